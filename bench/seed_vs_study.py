"""Seed vs study: one training step of the 2018 study's networks as its notebook ran them
(bench/study_reference.py) against ours (`seed` G + `seed` D through the trainer's step,
bench.common.TrainStep, with configs/seed.yaml's losses), like for like, in ONE process.

    python bench/seed_vs_study.py                                   # 224 px, batch 12, fp32,bf16
    python bench/seed_vs_study.py --rounds 8 --json seed_vs_study.json

Both steps do the same work: G forward, three D forwards (real, fake for D, fake for G), the
backward passes and two Adam steps, on the same synthetic batch; bf16 is torch.autocast around the
forwards with float32 losses, as the trainer. Ours adds the EMA update and the LR schedulers; the
study's also computes D's weight gradients in its G backward (and throws them away), ours does not.

Timing: --warmup untimed steps of each (the first counts FLOPs, unless --no-flops), then --rounds
rounds of --steps timed steps of each, the order alternating from round to round (study, ours /
ours, study) so that a drift in the machine's load hits both alike. img/s = batch / median step
time; best = batch / fastest step; ratio = ours / study. On a shared CPU, where other jobs stretch
wall times, the ratio of median process CPU times per step, study / ours, is the steadier figure.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import common  # noqa: E402
from bench.study_reference import StudyStep  # noqa: E402


def measure(size=224, batch=12, precision="bf16", device="cpu", rounds=5, steps=2, warmup=1,
            channels_last="auto", threads=0, flops=True):
    """Both steps for one precision, interleaved -> a result row (dict)."""
    common.set_threads(threads)
    dev = common.resolve_device(device)
    # configs/seed.yaml: vanilla BCE + 500 x mean inside + 500 x mean outside = 1000 x MSE
    cfg = common.bench_config("seed", 1.0, size, batch, precision, dev.type, channels_last,
                              extra=("--config", "seed"))
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    ours = common.TrainStep(cfg, env)
    study = StudyStep(dev, env.amp_dtype)
    if env.channels_last:
        for m in (study.g, study.d):
            m.to(memory_format=torch.channels_last)
    gray, ab_real, mask = common.synthetic_batch(batch, size, env)
    runs = {"study": lambda: study(gray, ab_real, mask),
            "ours": lambda: ours(gray, ab_real, mask)}

    counted = {k: None for k in runs}
    for k, fn in runs.items():
        for i in range(max(int(warmup), 1 if flops else 0)):
            if i == 0 and flops:
                counted[k] = common.count_flops(fn)
            else:
                common.timed(fn, dev)
    times, cpu = {k: [] for k in runs}, {k: [] for k in runs}
    for r in range(int(rounds)):
        for k in (("study", "ours") if r % 2 == 0 else ("ours", "study")):
            for _ in range(int(steps)):
                c0 = time.process_time()
                times[k] += common.time_calls(runs[k], 1, dev)
                cpu[k].append(time.process_time() - c0)

    row = {"size": size, "batch": batch, "precision": precision, "device": str(dev),
           "channels_last": env.channels_last, "threads": torch.get_num_threads(),
           "rounds": int(rounds), "steps_per_round": int(steps)}
    for k, t in times.items():
        s = common.summarize(t)
        row.update({f"{k}_images_per_s": batch / s["median_s"],
                    f"{k}_images_per_s_best": batch / s["best_s"],
                    f"{k}_step_s_all": s["all_s"],
                    f"{k}_cpu_s_median": statistics.median(cpu[k]),
                    f"{k}_gflop_per_image": counted[k] / batch / 1e9 if counted[k] else None})
    row["ratio_median"] = row["ours_images_per_s"] / row["study_images_per_s"]
    row["ratio_best"] = row["ours_images_per_s_best"] / row["study_images_per_s_best"]
    row["ratio_cpu"] = row["study_cpu_s_median"] / row["ours_cpu_s_median"]
    row["params_g_ours"], row["params_d_ours"] = ours.params()
    from gan_colorize.model.networks import count_params
    row["params_g_study"], row["params_d_study"] = count_params(study.g), count_params(study.d)
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224, help="px; the study's D is built for 224")
    p.add_argument("--batch", type=int, default=12, help="the study's batch")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2, help="timed steps of each per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    common.add_common_args(p)
    args = p.parse_args(argv)
    if args.size != 224:
        p.error("--size: the study's discriminator (7x7 conv6) takes 224 px only")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    info = common.machine_info(dev)
    rows = []
    for precision in args.precision:
        common.log(f"seed_vs_study: {args.size}px batch {args.batch} {precision} on {dev.type}")
        rows.append(measure(args.size, args.batch, precision, dev.type, args.rounds, args.steps,
                            args.warmup, args.channels_last, args.threads, not args.no_flops))
    cols = [("size", "px", ""), ("batch", "batch", ""), ("precision", "prec", ""),
            ("study_images_per_s", "study img/s", ".2f"),
            ("study_images_per_s_best", "best", ".2f"),
            ("ours_images_per_s", "ours img/s", ".2f"), ("ours_images_per_s_best", "best", ".2f"),
            ("ratio_median", "ours/study", ".2f"), ("ratio_best", "(best)", ".2f"),
            ("ratio_cpu", "(CPU time)", ".2f"),
            ("study_gflop_per_image", "GFLOP/img study", ".2f"),
            ("ours_gflop_per_image", "ours", ".2f")]
    notes = [f"{args.rounds} rounds x {args.steps} timed steps of each, alternating order, after "
             f"{args.warmup} untimed; img/s = batch / median step, best = batch / fastest step",
             "study: bench/study_reference.py (MasksGAN.ipynb's G, D and loop body); "
             "ours: seed G + seed D through bench.common.TrainStep, configs/seed.yaml's losses"]
    common.print_table("seed vs study: one G+D training step, like for like", info, cols, rows,
                       notes)
    common.write_json(args.json, "seed_vs_study", info, args, rows)
    return rows


if __name__ == "__main__":
    main()
