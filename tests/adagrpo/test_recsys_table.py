"""Any interaction table: (user, item, timestamp) rows → time-ordered sequences → the same
task, semantic ids (co-occurrence, no attributes) and ranker as the Beauty recipes."""

from __future__ import annotations

from advx import BuildContext
from advx_recsys import NextItemConfig, RankerConfig, build_next_item, build_ranker

DOC_EXAMPLE = """user,item,timestamp
u1,shampoo-12,1690000000
u1,conditioner-3,1690003600
u2,lipstick-7,1690000100
u1,mask-1,1690007200
u2,shampoo-12,1690009000
u2,serum-4,1690012000
"""


def test_the_documented_csv_runs_through_task_and_ranker(tmp_path):
    rows = [DOC_EXAMPLE.rstrip("\n")]
    for u in range(3, 23):  # more users, rows deliberately out of time order
        for k, t in enumerate((300, 100, 200, 400)):
            rows.append(f"u{u},item-{(u + k) % 7},{1690000000 + t + u}")
    path = tmp_path / "interactions.csv"
    path.write_text("\n".join(rows) + "\n")
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    task = build_next_item(
        NextItemConfig(path=str(path), format="table", embedding="cooccurrence",
                       codebook=[2, 2], svd_dim=3, history=3), ctx)
    u1 = next(e for e in task.split.test if e.user == "u1")
    assert u1.history == ("shampoo-12", "conditioner-3") and u1.target == "mask-1"
    u3 = next(e for e in task.split.test if e.user == "u3")  # sorted by timestamp: 100,200,300,400
    assert u3.history == ("item-4", "item-5", "item-3") and u3.target == "item-6"
    assert all(task.item_of(task.codec.text_of(i)) == i for i in task.items)
    ranker = build_ranker(RankerConfig(d_model=8, num_heads=2, num_layers=1, epochs=2,
                                       max_history=4), BuildContext(tmp_path, 0, "cpu",
                                                                    task=task))
    out = ranker.fit(task.classifier_train())
    assert 0.0 <= out["ranker/test_hr@10"] <= 1.0 and out["ranker/epochs"] == 2
