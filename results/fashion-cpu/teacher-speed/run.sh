cd "$(git rev-parse --show-toplevel)"
for cfg in "b64-auto --batch-size 64 --amp auto" "b256-auto --batch-size 256 --amp auto" "b256-off --batch-size 256 --amp off"; do
  set -- $cfg; name=$1; shift
  rm -rf runs/p34-$name
  start=$(date +%s)
  .venv/bin/vitc teacher --model resnet18 --data fashion-mnist --img-size 28 --epochs 1 --aug fashion --lr 2e-3 --warmup-epochs 0.2 --drop-path 0 "$@" --out runs/p34-$name > runs/p34-$name.log 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - start ))s" >> runs/p34.txt
done
