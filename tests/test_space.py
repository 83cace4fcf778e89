"""Search spaces: OFA-exact topology, choices, codes, validation and accounting."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hwnas
from hwnas.space import Arch, get_space, list_spaces, make_divisible

SPACES = ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "tiny-mbv3"]


def test_registry_lists_the_three_spaces():
    assert set(SPACES) <= set(list_spaces())
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        get_space("nope")


def test_make_divisible_matches_mobilenet_rule():
    assert [make_divisible(v) for v in (19.2, 28.8, 48, 96, 134.4, 192, 1152, 1536, 16)] == \
        [24, 32, 48, 96, 136, 192, 1152, 1536, 16]
    assert make_divisible(10) == 16  # 8 would lose more than 10%


@pytest.mark.parametrize("name, widths", [
    ("ofa-mbv3-w1.0", (16, 16, [24, 40, 80, 112, 160], 960, 1280)),
    ("ofa-mbv3-w1.2", (24, 24, [32, 48, 96, 136, 192], 1152, 1536)),
])
def test_ofa_widths(name, widths):
    space = get_space(name)
    got = (space.stem_width, space.first_block_width, [s.width for s in space.stages],
           space.final_expand_width, space.feature_mix_width)
    assert got == widths
    assert [s.stride for s in space.stages] == [2, 2, 2, 1, 2]
    assert [s.se for s in space.stages] == [False, True, False, True, True]
    assert space.num_blocks == 20 and space.num_stages == 5 and space.num_codes == 46


def test_tiny_space_keeps_spatial_detail():
    space = get_space("tiny-mbv3")
    assert space.stem_stride == 1
    downsamplings = sum(s.stride == 2 for s in space.stages)
    assert downsamplings < sum(s.stride == 2 for s in get_space("ofa-mbv3-w1.0").stages)
    final_hw = space.signatures(space.min_arch(32))[-3].in_hw  # AvgPool input
    assert final_hw == 4
    assert all(24 <= r <= 64 for r in space.resolutions)


@pytest.mark.parametrize("name", SPACES)
def test_arch_dict_json_round_trip(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = space.sample(rng)
        assert Arch.from_dict(arch.to_dict()) == arch
        assert Arch.from_json(arch.to_json()) == arch
        assert json.loads(arch.to_json())["r"] == arch.r


def test_arch_accepts_ofa_variants():
    base = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}
    assert Arch.from_dict({**base, "image_size": 160}).r == 160
    assert Arch.from_dict({**base, "r": [176]}).r == 176
    arch = Arch.from_dict({**base, "r": np.int64(192), "e": np.array([4.0] * 20)})
    assert arch.r == 192 and arch.e == (4,) * 20 and isinstance(arch.e[0], int)
    with pytest.raises(ValueError, match="missing r"):
        Arch.from_dict(base)
    with pytest.raises(ValueError, match=r"ks\[0\]=3.5 is not an integer"):
        Arch.from_dict({**base, "ks": [3.5] + [3] * 19, "r": 160})
    with pytest.raises(dataclass_error()):
        arch.r = 5  # immutable


def dataclass_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("field, value, message", [
    ("ks", 4, r"ks\[3\]=4 is not allowed; allowed: \[3, 5, 7\]"),
    ("e", 5, r"e\[3\]=5 is not allowed; allowed: \[3, 4, 6\]"),
    ("d", 5, r"d\[3\]=5 is not allowed; allowed: \[2, 3, 4\]"),
])
def test_invalid_values_name_field_and_allowed_set(field, value, message):
    space = get_space("ofa-mbv3-w1.0")
    data = space.max_arch(224).to_dict()
    data[field][3] = value
    with pytest.raises(ValueError, match=message):
        space.encode([data])


def test_invalid_length_and_resolution():
    space = get_space("ofa-mbv3-w1.0")
    data = space.max_arch(224).to_dict()
    with pytest.raises(ValueError, match=r"len\(ks\)=19, expected 20"):
        space.macs({**data, "ks": data["ks"][:19], "e": data["e"][:19]})
    with pytest.raises(ValueError, match="r=100 is not an allowed resolution"):
        space.signatures(Arch.from_dict({**data, "r": 100}))


@pytest.mark.parametrize("name", SPACES)
def test_encode_decode_and_code_checks(name):
    space = get_space(name)
    codes = space.sample_codes(500, 3)
    assert codes.dtype == np.int32 and codes.shape == (500, space.num_codes)
    archs = space.decode(codes)
    np.testing.assert_array_equal(space.encode(archs), codes)
    bad = codes.copy()
    bad[7, space.num_blocks + 2] = 3
    with pytest.raises(ValueError, match=r"codes row 7: e\[2\] code 3 out of range \[0, 3\)"):
        space.check_codes(bad)


@pytest.mark.parametrize("name", SPACES)
def test_sampling_mutation_crossover_stay_in_space(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    seen_r = set()
    for _ in range(200):
        child = space.crossover(a, b, rng)
        for gene_c, gene_a, gene_b in zip(space.encode(child)[0], space.encode(a)[0], space.encode(b)[0]):
            assert gene_c in (gene_a, gene_b)
        mutant = space.mutate(a, rng, prob=0.3)
        space.validate(mutant)
        seen_r.add(space.sample(rng).r)
    assert space.mutate(a, rng, prob=0.0) == a
    assert seen_r == set(space.resolutions)
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))


def ofa_given_spec_keys(arch: Arch) -> list[str]:
    """OFA's predict_network_latency_given_spec key walk for the w1.2 space, written out independently."""
    r = arch.r
    f = (r + 1) // 2
    keys = [f"Conv-input:{r}x{r}x3-output:{f}x{f}x24",
            f"expanded_conv-input:{f}x{f}x24-output:{f}x{f}x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"]
    c_in = 24
    for i, (stride, width, hs, se) in enumerate(zip([2, 2, 2, 1, 2], [32, 48, 96, 136, 192],
                                                    [0, 0, 1, 1, 1], [0, 1, 0, 1, 1])):
        for j in range(arch.d[i]):
            s = stride if j == 0 else 1
            out = int((f - 1) / s + 1)
            mid = make_divisible(round(c_in * arch.e[i * 4 + j]), 8)
            idskip = int(s == 1 and c_in == width)
            keys.append(f"expanded_conv-input:{f}x{f}x{c_in}-output:{out}x{out}x{width}-expand:{mid}"
                        f"-kernel:{arch.ks[i * 4 + j]}-stride:{s}-idskip:{idskip}-se:{se}-hs:{hs}")
            f, c_in = out, width
    keys += [f"Conv_1-input:{f}x{f}x192-output:{f}x{f}x1152", f"AvgPool2D-input:{f}x{f}x1152-output:1x1x1152",
             "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000"]
    return keys


def test_signatures_follow_ofa_key_walk():
    space = get_space("ofa-mbv3-w1.2")
    rng = np.random.default_rng(7)
    for _ in range(100):
        arch = space.sample(rng)
        assert [sig.key for sig in space.signatures(arch)] == ofa_given_spec_keys(arch)


def test_all_signatures_match_real_note10_key_set(note10_dir):
    import yaml

    space = get_space("ofa-mbv3-w1.2")
    for r in (160, 192, 224):
        table = yaml.safe_load((note10_dir / f"{r}_lookup_table.yaml").read_text())
        assert {sig.key for sig in space.all_signatures([r])} == set(table)


def test_macs_follow_ofa_counting_by_hand():
    """MACs of the smallest w1.0 subnet at 224 px, counted layer by layer by hand (OFA's rule)."""
    space = get_space("ofa-mbv3-w1.0")
    arch = space.min_arch(224)
    se = lambda mid: 2 * mid * make_divisible(mid // 4, 8)  # noqa: E731
    expected = 112 * 112 * 9 * 3 * 16  # stem
    expected += 112 * 112 * 9 * 16 + 112 * 112 * 16 * 16  # first block: dw + project
    hw, c = 112, 16
    for width, stride, has_se in zip([24, 40, 80, 112, 160], [2, 2, 2, 1, 2], [0, 1, 0, 1, 1]):
        for j in range(2):
            s = stride if j == 0 else 1
            out = (hw + s - 1) // s
            mid = 3 * c
            expected += hw * hw * c * mid + out * out * 9 * mid + out * out * mid * width
            expected += se(mid) if has_se else 0
            hw, c = out, width
    expected += 7 * 7 * 160 * 960 + 960 * 1280 + 1280 * 1000
    assert space.macs(arch) == expected


def test_macs_and_params_grow_with_choices():
    space = get_space("ofa-mbv3-w1.2")
    small, large = space.min_arch(224), space.max_arch(224)
    assert space.macs(small) < space.macs(large)
    assert space.params(small) < space.params(large)
    assert space.params(space.max_arch(160)) == space.params(large)  # params do not depend on resolution
    # OFA reports ~7.7 M parameters for its largest w1.0 subnet
    assert 7.6e6 < get_space("ofa-mbv3-w1.0").params(get_space("ofa-mbv3-w1.0").max_arch()) < 7.8e6


def test_content_hash_is_stable_and_sensitive():
    a, b = get_space("tiny-mbv3"), get_space("tiny-mbv3")
    assert a.content_hash == b.content_hash and len(a.content_hash) == 16
    assert get_space("tiny-mbv3", num_classes=100).content_hash != a.content_hash
    assert get_space("ofa-mbv3-w1.0").content_hash != get_space("ofa-mbv3-w1.2").content_hash


def test_public_surface():
    space = hwnas.get_space("ofa-mbv3-w1.2")
    arch = space.sample(np.random.default_rng(0))
    assert isinstance(arch, hwnas.Arch)
    assert space.encode([arch]).shape == (1, 46)
    assert all(isinstance(sig, hwnas.OpSignature) for sig in space.signatures(arch))
