"""Every call of the operators in this repository passes what follows their required arguments
by name (update's first four, copy_slots' first three), so that a change of the schema binds no
argument to the wrong parameter without an error: the raw operators, the wrappers, the reference
baselines, the Python twins (the fallback, the CUDA grid run on the CPU, the call descriptions),
the SGLang drop-ins' helpers.
A call that forwards ``*args`` whole is the dispatcher's binding, which the schema itself gives.
(tests/cpp/test_update.cpp calls through the dispatcher by argument name, for the same reason.)"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The callees, by the last part of their name, and how many arguments they take by position.
REQUIRED = {
    "update": 4,
    "loop_update": 4,
    "vectorized_update": 4,
    "commit_verified_states": 4,
    "UpdateCall": 4,
    "run_cuda_grid_on_cpu": 4,
    "raw_op": 4,
    "_update": 4,  # the SGLang drop-ins' helpers
    "copy_slots": 3,
    "loop_copy_slots": 3,
    "CopySlotsCall": 3,
    "run_copy_slots_grid_on_cpu": 3,
    "_copy_slots": 3,
}


def callee(node: ast.Call) -> str | None:
    function = node.func
    if isinstance(function, ast.Subscript) and ast.unparse(function.value) == "IMPLEMENTATIONS":
        return "update"  # the test implementations of update, by name
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else None


def test_arguments_past_the_required_ones_go_by_name():
    offenders = []
    for path in sorted(ROOT.glob("**/*.py")):
        if "build" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or callee(node) not in REQUIRED:
                continue
            forwards = len(node.args) == 1 and isinstance(node.args[0], ast.Starred)
            if len(node.args) > REQUIRED[callee(node)] and not forwards:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
            elif any(isinstance(a, ast.Starred) for a in node.args) and not forwards:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: positional *args")
    assert not offenders, "\n".join(offenders)
