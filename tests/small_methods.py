"""Small, fast settings of every registered method for the tests that build each one (tests/test_stage_terms.py,
tests/ddp_worker.py); switches that add a stage are on, so every kind of stage is exercised. A new method adds its
entry here (its defaults may need pixels or pretrained weights)."""

FUSION = dict(modality_dim=16, nhead=2, dim_feedforward=32, head_hidden=32, max_rows=None)


def small_settings(batch_size: int) -> dict[str, dict]:
    fusion = dict(FUSION, batch_size=batch_size)
    return {
        "agch": dict(hidden=16, gcn_dims=[8, 8]),
        "ucmfh": dict(fusion, pretrain_epochs=1),
        "ucmfh_variant": dict(fusion, encoder_epochs=1),
        "agch_fusion_balanced": dict(fusion, pretrain_epochs=1),
        "djsrh": dict(hidden=32),
        "jdsh": dict(hidden=32),
        "dgcpn": dict(hidden=32, knn_number=30, scale=8.0),
        "greedyhash": dict(backbone="identity"),
        "dsh": dict(backbone="identity"),
        "vsepp": dict(embed_dim=16),
    }
