"""scripts/param_table.py: the parameter counts of the paper."""

from scripts import param_table


def test_param_table_matches_paper_counts(tmp_path):
    g, v = param_table.main(["--out", str(tmp_path)])
    by_arm = {r["arm"]: r for r in g}
    assert by_arm["bpe_tied"]["total"] == 124_475_904
    assert by_arm["kron (pos_dim 16, D 4096)"]["total"] == 127_621_632
    assert by_arm["kron_tied (pos_dim 16, D 4096)"]["total"] == 88_988_161  # no V x d matrix: +1 for the logit scale
    row = next(r for r in v if r["vocab"] == 131072 and r["d_model"] == 4096)
    assert row["dense_table"] == 536_870_912 and row["kron_projection"] == 33_554_432 and row["input_ratio"] == 16
    assert row["kron_non_trainable_bytes"] == 4_456_448


def test_the_readme_arms_table_quotes_the_counted_totals():
    """Every arm's total in the README's arms table is the one counted on the model (param_table)."""
    import os
    import re

    import analysis

    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    quoted = dict(re.findall(r"^\| `(\w+)` \|.*\| ([\d,]+) \|$", readme, re.M))
    counted = {r["arm"].split(" ")[0]: r["total"] for r in analysis.gpt2_rows(pos_dims=(16,))}
    assert quoted and {arm: int(v.replace(",", "")) for arm, v in quoted.items()} == counted


def test_the_readme_quotes_bpe_lowranks_matched_ranks():
    """The README's "r = 10 at d = 128, 62 at d = 768" is arms.matched_rank at V 50,304."""
    import os
    import re

    from arms import matched_rank
    from model import GPTConfig

    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    row = next(line for line in readme.splitlines() if line.startswith("| `bpe_lowrank` |"))
    quoted = re.search(r"r = (\d+) at d = (\d+), (\d+) at d = (\d+)", row).groups()
    for r, d in ((quoted[0], quoted[1]), (quoted[2], quoted[3])):
        assert matched_rank(GPTConfig(embedding="bpe_lowrank", vocab_size=50304, n_embd=int(d), n_head=4)) == int(r)
