"""A toy arm, as a user would add one: one class and one register() call, nothing else touched.
Its input is a learned table whose output is multiplied by a fixed 3 (an input-scale manipulation
that keeps Adam's relative updates, unlike a re-initialised table), with its own head."""

import arms


class TripledTable(arms.TableInput):
    def forward(self, idx, byte_overrides=None):
        return 3.0 * super().forward(idx, byte_overrides)


arms.register(
    "toy_tripled",
    lambda cfg: (TripledTable(cfg.vocab_size, cfg.n_embd), arms.LinearHead(cfg.n_embd, cfg.vocab_size)),
    doc="a learned table x 3, untied head (test only)",
    init_rms=0.06,  # 3 x the table's 0.02
)
