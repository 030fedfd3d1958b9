#!/usr/bin/env bash
# The GPU checks in one call, for a machine with a CUDA GPU and the project's packages importable
# (installed, or on PYTHONPATH): the training library's tests (on the GPU by auto-detection), the
# GPU search tests, a probe of NCCL with two ranks on one device, and benchmarks/gpu_trials.py.
# Everything it prints also lands in OUT_DIR (default ./gpu-check). Time on 1 H200, 16 CPUs: ~6 min with
# the 1- and 4-per-GPU arms alone (2026-12-04); the 8-per-GPU arm and --mps add about a run each per arm.
# GPU_CHECK_BENCH_ONLY=1 skips the tests and the NCCL probe (a second call, when the first ran out of time).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [extra gpu_trials.py arguments]
#   bash benchmarks/gpu_check.sh gc --mps --repeats 1 --trials 12 --epochs 4   # issue 25's item 5 in one call
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
shift || true
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } >"$out/gpu.txt" 2>&1
"$py" - <<'EOF' 2>&1 | tee "$out/versions.txt"
import torch, ray, optuna, pydantic, search.cli  # noqa: F401 - the imports are the check
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
print("ray", ray.__version__, "optuna", optuna.__version__, "pydantic", pydantic.__version__)
EOF

if [ "${GPU_CHECK_BENCH_ONLY:-0}" != 1 ]; then
# Does NCCL take two ranks on one GPU? (Why a trial's DDP workers on GPU fractions use gloo.)
probe=$(mktemp --suffix=.py)  # a file, not stdin: spawned processes re-import it
cat >"$probe" <<'EOF'
import os, socket, torch, torch.distributed as dist, torch.multiprocessing as mp

def rank(r, port, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        dist.init_process_group("nccl", rank=r, world_size=2, device_id=torch.device("cuda", 0))
        x = torch.ones(1, device="cuda:0")
        dist.all_reduce(x)
        q.put((r, f"ok {x.item()}"))
        dist.destroy_process_group()
    except Exception as exc:  # noqa: BLE001
        q.put((r, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))

if __name__ == "__main__":
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    ctx = mp.get_context("spawn"); q = ctx.Queue()
    ps = [ctx.Process(target=rank, args=(r, port, q)) for r in range(2)]
    [p.start() for p in ps]
    try:
        print("NCCL, two ranks on cuda:0:", sorted(q.get(timeout=30) for _ in ps))
    except Exception as exc:  # noqa: BLE001
        print("NCCL, two ranks on cuda:0: no answer in 30 s (hung):", type(exc).__name__)
    [p.kill() for p in ps]
EOF
timeout 60 "$py" "$probe" 2>&1 | tail -5 | tee "$out/nccl_probe.txt"

timeout 300 "$py" -m pytest -q -p no:cacheprovider tests/trainables tests/search/trials/test_resources.py \
    tests/search/trials/test_gpu_search.py 2>&1 | tee "$out/tests.log" | tail -25
echo "tests exit: ${PIPESTATUS[0]}" | tee -a "$out/tests.log"
fi

timeout "${GPU_CHECK_BENCH_TIMEOUT:-480}" "$py" benchmarks/gpu_trials.py --json "$out/gpu_trials.json" "$@" 2>&1 \
    | tee "$out/bench.log" | tail -30
echo "benchmark exit: ${PIPESTATUS[0]}" | tee -a "$out/bench.log"
