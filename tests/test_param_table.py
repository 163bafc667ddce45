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
