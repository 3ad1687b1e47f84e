"""Which precision trains faster on this machine: interleaved timing of float32 and bfloat16
training steps, warm-up excluded.

The schedule: ``warmup`` untimed steps of each precision (float32, bfloat16, ...), then
``samples`` timed steps of each in ABBA order (float32, bfloat16, bfloat16, float32, ...), so a
drift of the machine's load during the probe (another process starting, the CPU clocking down)
weighs on both precisions alike. A step is timed from the start of its forward pass to the end
of its parameter update (data loading is not part of it); the decision compares the medians.
"""
import statistics

PRECISIONS = ('float32', 'bfloat16')
# A probe result or a fixed choice, as stored in the checkpoint: 'precision' ('float32' or
# 'bfloat16'), 'source' (how it was chosen) and, after a probe, the median step times
# 'float32_s' / 'bfloat16_s' and the timed 'samples' per precision. Plain str/float/int only,
# so a `weights_only=True` load reads it.
PrecisionRecord = dict[str, str | float | int]


class PrecisionProbe:
    """The probe's schedule and its measurements.

    Args:
        samples: Timed steps per precision.
        warmup: Untimed steps per precision before the timed ones.
    """

    def __init__(self, samples: int, warmup: int = 1) -> None:
        self.samples = samples
        self.warmup = warmup
        self.times: dict[str, list[float]] = {name: [] for name in PRECISIONS}

    @property
    def num_steps(self) -> int:
        """Steps the whole probe takes (warm-up included)."""
        return 2 * (self.warmup + self.samples)

    def precision(self, step: int) -> str:
        """The precision of probe step ``step`` (0-based)."""
        if step < 2 * self.warmup:
            return PRECISIONS[step % 2]
        pair, position = divmod(step - 2 * self.warmup, 2)
        return PRECISIONS[position ^ (pair % 2)]  # ABBA: odd pairs start with bfloat16

    def record(self, step: int, seconds: float) -> None:
        """Keep the duration of probe step ``step`` unless it is a warm-up step."""
        if step >= 2 * self.warmup:
            self.times[self.precision(step)].append(seconds)

    def result(self, min_speedup: float) -> PrecisionRecord:
        """The decision once every timed step is recorded: bfloat16 only when its median step
        is at least ``min_speedup`` times faster than float32's (float32, the exact one, wins
        a tie)."""
        fp32, bf16 = (statistics.median(self.times[name]) for name in PRECISIONS)
        precision = 'bfloat16' if fp32 >= min_speedup * bf16 else 'float32'
        return dict(precision=precision, source='probe', float32_s=fp32, bfloat16_s=bf16,
                    samples=self.samples)


def describe(record: PrecisionRecord) -> str:
    """One line for the log: the precision, how it was chosen and the probe's timings."""
    text = f'training in {record["precision"]} ({record["source"]}'
    if 'float32_s' in record:
        text += (f': median step {record["float32_s"]:.4f} s in float32, '
                 f'{record["bfloat16_s"]:.4f} s in bfloat16, {record["samples"]} interleaved '
                 'timed steps each after warm-up')
    return text + ')'
