#!/usr/bin/env bash
# Adds the Python reference stack (transformers, accelerate, scipy, scikit-learn, torchvision, pillow, seqeval for
# the NER golden and reference run; sentencepiece and protobuf for transformers' slow→fast tokenizer conversion) to the cached
# torch environment that scripts/setup-libtorch.sh creates. Used only by tools/ and bench/ scripts
# (golden fixtures, reference runs); finetune itself never needs Python at run time.
# Prints the python to run those scripts with.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
torch_dir="$(bash "$here/scripts/setup-libtorch.sh")"
venv="$(cd "$torch_dir/../../../.." && pwd)"
"$venv/bin/pip" install --disable-pip-version-check -q "transformers==4.57.6" "accelerate>=0.26" numpy scipy scikit-learn \
    "torchvision==0.26.0" pillow "sentencepiece==0.2.1" "protobuf==6.33.1" "seqeval==1.2.2" >&2
echo "$venv/bin/python"
