"""Experiment 2: how much to mask? 15% vs 30% vs 40% random masking.

The same small encoder, data and number of steps as experiment 1
(English), random 80/10/10 masking at three rates (`max_predictions` grows
with the rate, so no selected token is dropped), then fine-tuning on
Rotten Tomatoes. Wettig et al. (2023) found 40% at least as good as 15%
for large models; this measures what holds at this scale. Held-out MLM
metrics use the common yardstick (random 15%) as well as each run's rate.

    python -m experiments.mask_rate   # ~15 min on 2 CPU cores
"""

import math
import os

from experiments import common
from experiments.pretraining import finetune, pretrain, table_and_figure

RATES = [0.15, 0.30, 0.40]


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    length = common.base_config("pretrain_en")["data"]["sequence_length"]
    rows = {f"{rate:.0%}": [] for rate in RATES}
    for seed in args.seeds:
        for rate in RATES:
            name = f"{rate:.0%}"
            folder = os.path.join(args.work, "mask_rate", name.rstrip("%"), f"seed{seed}")
            masking = {"strategy": "random", "rate": rate,
                       "max_predictions": math.ceil(rate * length)}
            run, metrics = pretrain("pretrain_en", masking, folder, seed, args)
            metrics.update(finetune("finetune_en", run, folder, seed, args))
            rows[name].append(metrics)
            print(f"[seed {seed}] rate {name}: {metrics}", flush=True)
    table, figure = table_and_figure(rows, "rotten_tomatoes", "austen+wordnet", "mask rate")
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}. 'own masks' is "
             "accuracy on held-out text masked at the run's own rate (harder at higher "
             "rates: less context); 'random 15%' is the same masks for every model.")
    common.save("mask_rate", "Experiment 2: mask rate", table,
                {"seeds": args.seeds, "scale": args.scale, "rows": rows}, figure, notes,
                args.results)


if __name__ == "__main__":
    main()
