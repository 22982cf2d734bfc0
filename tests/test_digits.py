import pytest
import torch

from posgen.data import BiasedDigitsConfig, DataConfig, DataError, make_biased_digits, open_dataset
from posgen.data.digits import DEFAULT_COLORS


def test_digits_live_only_in_the_region_and_are_deterministic_per_seed():
    cfg = BiasedDigitsConfig(canvas=(24, 40), region=(2, 3, 12, 14), seed=5)
    a, labels = make_biased_digits(cfg)
    assert a.shape == (1797, 3, 24, 40) and a.dtype == torch.uint8
    mask = torch.zeros(24, 40, dtype=torch.bool)
    mask[2:14, 3:17] = True
    assert a[:, :, ~mask].max() == 0
    assert a[:, :, mask].float().mean() > 10
    assert set(labels.tolist()) == set(range(10))
    b, _ = make_biased_digits(cfg)
    assert torch.equal(a, b)
    c, _ = make_biased_digits(BiasedDigitsConfig(canvas=(24, 40), region=(2, 3, 12, 14), seed=6))
    assert not torch.equal(a, c)


def test_digits_colours_come_from_the_palette():
    imgs, _ = make_biased_digits(BiasedDigitsConfig(colors=((255, 0, 0), (0, 0, 255))))
    assert imgs[:, 1].max() == 0  # no green anywhere
    brightest = imgs.flatten(2).max(dim=2).values  # [N, 3]
    assert ((brightest[:, 0] > 0) ^ (brightest[:, 2] > 0)).all()  # each digit red or blue


def test_digits_copies_and_random_hues():
    imgs, labels = make_biased_digits(BiasedDigitsConfig(copies=2, colors=None))
    assert len(imgs) == 2 * 1797 and len(labels) == 2 * 1797
    assert len(DEFAULT_COLORS) >= 3


@pytest.mark.parametrize("kw, msg", [(dict(region=(10, 10, 30, 30)), "inside"), (dict(canvas=(0, 4)), "positive"),
                                     (dict(jitter=20), "jitter")])
def test_bad_digits_configs_raise(kw, msg):
    with pytest.raises(DataError, match=msg):
        make_biased_digits(BiasedDigitsConfig(**kw))


def test_open_dataset_checks_the_canvas_and_missing_sources(tmp_path):
    with pytest.raises(DataError, match="canvas"):
        open_dataset(DataConfig(), (64, 64))
    with pytest.raises(DataError, match="not found"):
        open_dataset(DataConfig(source=str(tmp_path / "nope")), (32, 32))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        open_dataset(DataConfig(source=str(empty)), (32, 32))
