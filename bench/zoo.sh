#!/usr/bin/env bash
# The zoo: train every model of caffepipe/training/models.py through the whole pipeline, as one DVC experiment.
#
#   bench/zoo.sh            # from the repository root, after ./run-pipeline (or in a fresh clone: it runs it all)
#
# The only difference from the default pipeline is params `netgen.models`; each model's solver settings are
# already in params.yaml (`train.overrides`), so Snakemake users get the same zoo by setting
#   netgen.models: [lenet, mlp, gapnet, lenet_bn, resnet, inception]
# in params.yaml and running `snakemake --cores 2`. Stages whose inputs did not change (lenet, mlp and gapnet
# after a default run; fetch, build-db, the read benchmark, fine-tuning) are not run again.
# The report (reports/index.html) then has one zoo-table row per model, the error curves of all of them, the
# hard-images galleries and the CAMs of every global-average-pooling model (gapnet, resnet, inception).
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
ZOO='[lenet,mlp,gapnet,lenet_bn,resnet,inception]'
start=$(date +%s)
dvc exp run --name zoo -S "netgen.models=${ZOO}"
echo "zoo: $(( $(date +%s) - start )) s of wall time"
dvc metrics show --md          # final accuracy and loss of every model; the zoo table is in reports/index.html
