"""`convtrain explain` on every layer type of the registry (hand-built runs, no training):
separable, depthwise, residual and inception blocks, channels_first layers, and grayscale input.

channels_first: the trainer refuses it on a CPU (model.build's device check), but TensorFlow's
CPU kernels run these layers eagerly, so a run built by hand is explained here end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from test_explain_fields import STACKS, build_run, conv

from convtrain.explain.filters import Kernel
from convtrain.explain.run import explain


def _first_test_image(run) -> str:
    split = json.loads(run.split.read_text())
    root = yaml.safe_load(run.config.read_text())["data"]["root"]
    return str(Path(root) / split["test"][0][0])


@pytest.mark.parametrize("stack", list(STACKS))
def test_every_layer_type_is_explained(tmp_path: Path, stack: str) -> None:
    run = build_run(tmp_path, STACKS[stack], size=30)
    result = explain(run.path, [_first_test_image(run)], out=tmp_path / "out")
    (record,) = result.images
    assert record.true_class == "alpha" and record.split == "test"
    assert {g.role for g in record.gradcam} == {"predicted", "true"}
    assert record.receptive_field.effective.inside_share == pytest.approx(1.0)
    png = Image.open(record.png)
    assert png.size[0] == 1200 and png.size[1] > 800
    assert Path(result.filters_png).is_file() and Path(result.html).is_file()


def test_a_block_or_a_layer_inside_one_can_be_chosen(tmp_path: Path) -> None:
    run = build_run(tmp_path, STACKS["inception branches of different kernels"], size=30)
    image = _first_test_image(run)
    block = explain(run.path, [image], layer="inception_1", pictures=False).images[0]
    inner = explain(run.path, [image], layer="conv2d_4", pictures=False).images[0]
    assert block.gradcam_layer == "inception_1" and inner.gradcam_layer == "conv2d_4"
    # the 3x3 inside the second branch sees less than the block, whose 5x5 branch is dilated
    assert inner.receptive_field.theoretical.size < block.receptive_field.theoretical.size


def test_a_grayscale_run_draws_one_channel_filters(tmp_path: Path, monkeypatch) -> None:
    import convtrain.explain.run as explain_run

    seen: list[Kernel] = []
    real = explain_run.plot_filters
    monkeypatch.setattr(
        explain_run, "plot_filters", lambda found, *a: seen.extend(found) or real(found, *a)
    )
    run = build_run(tmp_path, [conv(), conv(6, strides=2), {"type": "global_avg_pool"}],
                    size=24, color_mode="grayscale")  # fmt: skip
    result = explain(run.path, [_first_test_image(run)], out=tmp_path / "out")
    assert [k.mode for k in seen] == ["grid", "channels"]
    assert all(k.relative_change and k.relative_change > 0 for k in seen)
    assert Image.open(result.images[0].png).mode in ("RGB", "RGBA")


def test_an_output_that_cannot_be_written_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import errno

    import convtrain.plots.save as save
    from convtrain.errors import ConvtrainError

    run = build_run(tmp_path, [conv(), {"type": "global_avg_pool"}], size=16)
    image = _first_test_image(run)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConvtrainError) as info:
        explain(run.path, [image], out=tmp_path / "a-file")
    assert str(info.value) == f"{tmp_path / 'a-file'}: cannot write the explanation (File exists)"

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save, "atomic_write_bytes", full)
    with pytest.raises(ConvtrainError) as info:
        explain(run.path, [image], out=tmp_path / "out")
    assert info.value.exit_code == 1 and str(info.value).startswith("disk full while writing into")
