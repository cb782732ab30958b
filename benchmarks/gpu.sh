#!/usr/bin/env bash
# The checks and benchmarks that need a GPU, as one script for one short lease of a GPU machine.
#
#   1. the backbone and IRIS tests on CUDA (tests/backbone/conftest.py adds the "cuda" device where
#      one is visible: dense, banded and dilated attention, KV-cached and fixed-shape decoding,
#      float32 kernels, CUDA-graph replay; test_iris.py: IRIS imagination through a CUDA graph);
#   2. benchmarks/attention.py --device cuda (section attention-cuda of docs/benchmarks.md);
#   3. benchmarks/world_models.py --device cuda, TWM and IRIS (section world-models-cuda).
#
# Such a machine may have its own python3 and torch and no RL packages: seqrl is used from this
# checkout without installing it (its root folders are copied into one `seqrl` folder), and wheels
# in .whl/ (gymnasium and farama-notifications, for the world-model rows) are installed beside it
# when present. Logs and the updated docs/benchmarks.md go to $OUT (default: ./gpu-out).
# Each part has its own time limit, and a failing part does not stop the others.
#
#   4. world_models_compile: IRIS with world_model.compile (writes the section); world_models_eager:
#      the same without it (--no-write), the same machine's baseline; tests_iris: IRIS's CUDA tests.
#   5. probe_gpt, probe_tokenizer: the diagnostics in benchmarks/probes/ (where IRIS imagination's
#      time goes; docs/iris.md quotes their logs).
#   6. iris_checks_paper: examples/iris_checks.py with the paper's tokenizer and GPT on Boxing frames
#      collected here beforehand (the machine has no ALE): first run
#      `python examples/iris_checks.py --game Boxing --frames 3000 --data .gpu-data/boxing.npz
#      --tokenizer-updates 0 --updates 0 --test-windows 1 --no-write` and carry .gpu-data; writes
#      the checks-boxing-paper-gpu section of docs/iris.md (copied to $OUT).
#   7. iris_minatar: one `seqrl train iris --preset iris-minatar` run on the GPU with 5-10x the
#      preset's updates per env step (the run directory goes to $OUT/iris-minatar; needs the
#      MinAtar, minari and packaging wheels in .whl/: checkpoints write the replay's spaces
#      through minari; `pip download --no-deps -d .whl minatar==1.0.15 minari==0.5.4 packaging`).
#
#   bash benchmarks/gpu.sh [PART ...]   # parts: tests attention world_models world_models_bf16
#                       # world_models_compile world_models_eager tests_iris probe_gpt probe_tokenizer
#                       # iris_checks_paper iris_minatar
#                       # (default: the first four)

set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
: >"$OUT/summary.txt"
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE

site=$(mktemp -d)
mkdir -p "$site/seqrl"
cp -r core/. "$site/seqrl/"
for part in backbone data envs agents world_models; do cp -r "$part" "$site/seqrl/$part"; done
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
fi
export PYTHONPATH=$site

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/gpu.txt"

run() {  # run NAME SECONDS COMMAND...: its log in $OUT/NAME.log, its exit status in the summary
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

parts=${*:-tests attention world_models world_models_bf16}
for part in $parts; do
    case $part in
    tests) run tests_backbone 150 python3 -m pytest -q -p no:cacheprovider tests/backbone \
        tests/world_models/test_iris.py ;;
    attention) run attention 220 python3 benchmarks/attention.py --part attention --device cuda --rounds 1 ;;
    world_models) run world_models 150 python3 benchmarks/world_models.py --device cuda --iris on \
        --iters 10 --acting-steps 50 --rounds 2 --replay-steps 20000 ;;
    world_models_compile) run world_models_compile 300 python3 benchmarks/world_models.py \
        --device cuda --iris on --iris-compile --iters 5 --acting-steps 20 --rounds 1 \
        --replay-steps 5000 ;;
    world_models_eager) run world_models_eager 100 python3 benchmarks/world_models.py --device cuda \
        --iris on --no-write --iters 10 --acting-steps 50 --rounds 2 --replay-steps 20000 ;;
    tests_iris) run tests_iris 70 python3 -m pytest -q -p no:cacheprovider \
        -k "cuda and (seed or compiled or kv_cached)" tests/world_models/test_iris.py ;;
    world_models_bf16) run world_models_bf16 100 python3 benchmarks/world_models.py --device cuda \
        --iris on --amp bf16 --no-write --iters 5 --acting-steps 20 --rounds 1 --replay-steps 5000 ;;
    probe_gpt) run probe_gpt 120 python3 benchmarks/probes/iris_gpt_step.py ;;
    probe_tokenizer) run probe_tokenizer 330 python3 benchmarks/probes/iris_tokenizer_layouts.py 300 ;;
    iris_checks_paper) run iris_checks_paper 480 python3 examples/iris_checks.py --game Boxing \
        --frames 3000 --data .gpu-data/boxing.npz --model paper --device cuda \
        --tokenizer-updates 3000 --updates 2000 --batch-size 32 --tokenizer-batch-size 64 \
        --restart-dead-codes 20 --section checks-boxing-paper-gpu ;;
    iris_minatar) run iris_minatar 300 python3 -m seqrl train iris --preset iris-minatar \
        --loop.device cuda --run-dir "$OUT/iris-minatar" --quiet --collect.steps 3500 \
        --eval.every 0 --world_model_train.ratio 1.0 --tokenizer_train.ratio 0.5 \
        --actor_critic_train.ratio 0.5 --world_model.tokenizer.restart_dead_codes 20 \
        --actor_critic.actor_lr 3e-4 --actor_critic.critic_lr 1e-3 ;;
    *) echo "unknown part '$part' (see the head of this script)" >&2 && exit 2 ;;
    esac
done
cp docs/benchmarks.md "$OUT/benchmarks.md"
cp docs/iris.md "$OUT/iris.md"
tail -n 3 "$OUT"/tests_backbone.log 2>/dev/null
cat "$OUT/summary.txt"
