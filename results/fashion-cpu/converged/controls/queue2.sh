#!/bin/bash
# issue 34, replanned at 22:40 for the session's time: controls at 2 epochs (hard x2, none x2, soft x1) and timm at
# 2 epochs, after the budget-fitted student (started by queue.sh) finishes; then the step speeds alone
cd /work/main
V=.venv/bin/vitc
T=models/fashion-mnist/teacher
R=runs/fc34b
COMMON="--student deit_tiny --data fashion-mnist --img-size 28 --patch-size 7 --batch-size 256 --lr 1e-3 --amp auto --aug fashion --eval-every 0.5 --epochs 2 --warmup-epochs 0.5 --drop-path 0"
stamp() { echo "$(date -u +%H:%M:%S) $*" >> $R/queue.log; }
while pgrep -f "student-hard-e11" > /dev/null; do sleep 10; done
stamp done student-fit
stamp start hard-s0
$V distill --teacher-checkpoint $T $COMMON --distillation hard --alpha 0.5 --seed 0 --out $R/ctl2-hard-s0 > $R/ctl2-hard-s0.log 2>&1
stamp done hard-s0 rc=$?
stamp start timm-e2
.venv/bin/python -m benchmarks.studies.timm_baseline --teacher $T --epochs 2 --out $R/timm-e2 > $R/timm-e2.log 2>&1
stamp done timm-e2 rc=$?
stamp start none-s0
$V distill $COMMON --distillation none --seed 0 --out $R/ctl2-none-s0 > $R/ctl2-none-s0.log 2>&1
stamp done none-s0 rc=$?
stamp start hard-s1
$V distill --teacher-checkpoint $T $COMMON --distillation hard --alpha 0.5 --seed 1 --out $R/ctl2-hard-s1 > $R/ctl2-hard-s1.log 2>&1
stamp done hard-s1 rc=$?
stamp start none-s1
$V distill $COMMON --distillation none --seed 1 --out $R/ctl2-none-s1 > $R/ctl2-none-s1.log 2>&1
stamp done none-s1 rc=$?
stamp start soft-s0
$V distill --teacher-checkpoint $T $COMMON --distillation soft --alpha 0.5 --seed 0 --out $R/ctl2-soft-s0 > $R/ctl2-soft-s0.log 2>&1
stamp done soft-s0 rc=$?
stamp start step-speed
.venv/bin/python -m benchmarks.studies.step_speed --out $R/speed.json student-e11=$R/student-hard-e11 hard=$R/ctl2-hard-s0 none=$R/ctl2-none-s0 soft=$R/ctl2-soft-s0 > $R/speed.log 2>&1
stamp done step-speed rc=$?
stamp all done
