"""Drop-in replacements for the state-commit functions of inference servers, built on
``mamba_state_ext``'s operators."""
