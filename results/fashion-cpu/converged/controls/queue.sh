#!/bin/bash
# issue 34 session 2: budget-fitted student, hard/none/soft controls at 3 epochs, timm side by side, 4-epoch teacher
cd /work/main
V=.venv/bin/vitc
T=models/fashion-mnist/teacher
R=runs/fc34b
COMMON="--student deit_tiny --data fashion-mnist --img-size 28 --patch-size 7 --batch-size 256 --lr 1e-3 --amp auto --aug fashion --eval-every 0.5"
stamp() { echo "$(date -u +%H:%M:%S) $*" >> $R/queue.log; }
stamp start student-fit
$V distill --teacher-checkpoint $T $COMMON --distillation hard --alpha 0.5 --epochs 11 --warmup-epochs 1 --drop-path 0.05 --out $R/student-hard-e11 > $R/student-hard-e11.log 2>&1
stamp done student-fit rc=$?
for s in 0 1; do
  stamp start hard-s$s
  $V distill --teacher-checkpoint $T $COMMON --distillation hard --alpha 0.5 --epochs 3 --warmup-epochs 0.5 --drop-path 0 --seed $s --out $R/ctl-hard-s$s > $R/ctl-hard-s$s.log 2>&1
  stamp done hard-s$s rc=$?
  if [ $s = 0 ]; then
    stamp start timm-e3
    .venv/bin/python -m benchmarks.studies.timm_baseline --teacher $T --epochs 3 --out $R/timm-e3 > $R/timm-e3.log 2>&1
    stamp done timm-e3 rc=$?
  fi
  stamp start none-s$s
  $V distill $COMMON --distillation none --epochs 3 --warmup-epochs 0.5 --drop-path 0 --seed $s --out $R/ctl-none-s$s > $R/ctl-none-s$s.log 2>&1
  stamp done none-s$s rc=$?
done
stamp start soft-s0
$V distill --teacher-checkpoint $T $COMMON --distillation soft --alpha 0.5 --epochs 3 --warmup-epochs 0.5 --drop-path 0 --seed 0 --out $R/ctl-soft-s0 > $R/ctl-soft-s0.log 2>&1
stamp done soft-s0 rc=$?
stamp start teacher-e4
$V teacher --model resnet18 --stem small --data fashion-mnist --img-size 28 --epochs 4 --batch-size 256 --lr 2e-3 --warmup-epochs 0.3 --amp auto --aug fashion --eval-every 0.5 --out $R/teacher-small-e4 > $R/teacher-small-e4.log 2>&1
stamp done teacher-e4 rc=$?
stamp all done
