"""Print the service's runtime requirements for one onnxruntime flavour, one per line.

pyproject.toml asks for the CPU build, `onnxruntime`. An image chooses by target: the CPU
image gets that wheel, the GPU image `onnxruntime-gpu` in its place, with the same version
range (the two wheels write the same package folder, so never both). The Dockerfile
therefore installs this list and then `pip install --no-deps .`; reading the list from
pyproject.toml keeps the image in step with the project's own dependency ranges.

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
        requirement = line.split(";", 1)[0].strip()  # drop any environment marker
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        if name.lower() in FLAVOURS.values():
            # keeps pyproject's version range, e.g. ">=1.18", under the flavour's name
            runtime = wanted + requirement[len(name) :]
        else:
            kept.append(line)
    if runtime is None:
        raise SystemExit("pyproject.toml lists no onnxruntime requirement")
    return [*kept, runtime]


def main() -> None:
    path, flavour = sys.argv[1:3]
    with open(path, "rb") as f:
        print("\n".join(requirements(tomllib.load(f), flavour)))


if __name__ == "__main__":
    main()
