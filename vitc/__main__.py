# `python -m vitc ...` and `torchrun --nproc_per_node 2 -m vitc distill ...`
from vitc.cli import main

main()
