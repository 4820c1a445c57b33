"""Print the service's runtime requirements for one onnxruntime flavour, one per line.

pyproject.toml chooses between `onnxruntime-gpu` and `onnxruntime` by environment marker
(the GPU wheel wherever it exists, i.e. Linux x86_64). An image chooses by target instead:
the CPU image must get the small CPU wheel although it is Linux x86_64, the GPU image only
`onnxruntime-gpu` (the two wheels write the same package folder, so never both). The
Dockerfile therefore installs this list and then `pip install --no-deps .`; reading the list
from pyproject.toml keeps the image in step with the project's own dependency ranges.

    python3 requirements.py pyproject.toml cpu|gpu > requirements.txt

Standard library only: it runs on the bare base image, before anything is installed.
"""

import re
import sys
import tomllib

FLAVOURS = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}


def requirements(pyproject: dict, flavour: str) -> list[str]:
    wanted = FLAVOURS[flavour]
    kept, runtime = [], None
    for line in pyproject["project"]["dependencies"]:
        requirement = line.split(";", 1)[0].strip()  # drop the environment marker
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()
        if name in FLAVOURS.values():
            if name == wanted:
                runtime = requirement  # keeps pyproject's version range, e.g. ">=1.18"
        else:
            kept.append(line)
    if runtime is None:
        raise SystemExit(f"pyproject.toml lists no {wanted} requirement")
    return [*kept, runtime]


def main() -> None:
    path, flavour = sys.argv[1:3]
    with open(path, "rb") as f:
        print("\n".join(requirements(tomllib.load(f), flavour)))


if __name__ == "__main__":
    main()
