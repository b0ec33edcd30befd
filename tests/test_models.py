"""Backbones: the registry, the loaders (open_clip vision towers incl. BiomedCLIP's config, timm, plain modules),
offline behaviour, float preprocessing against the libraries' own transforms, layer maps and hook hygiene.

Everything is offline and random-init. The BiomedCLIP-shaped round trip builds a real ViT-B/16 tower (86M parameters,
a ~350 MB checkpoint in tmp_path); all other tests use tiny models.
"""
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from torch import nn

import medinterp.models as M
from medinterp.models import (BIOMEDCLIP, Backbone, Preprocess, WeightsUnavailableError, backbone_schemes, capture,
                              list_layers, load_backbone, open_clip_layers, register_backbone, weights_fingerprint,
                              write_biomedclip_shaped)

TINY_TEXT = {"context_length": 2, "vocab_size": 2, "width": 8, "heads": 1, "layers": 1}
BIOMEDCLIP_VISION = {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
                     "timm_proj": "linear", "image_size": 224}
BIOMEDCLIP_TEXT = {"hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                   "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                   "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}
BIOMEDCLIP_PP = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
SMALL_TIMM_TOWER = {"embed_dim": 32, "text_cfg": TINY_TEXT,
                    "vision_cfg": {**BIOMEDCLIP_VISION, "timm_model_name": "test_vit", "image_size": 160}}
SMALL_NATIVE_TOWER = {"embed_dim": 24, "text_cfg": TINY_TEXT,
                      "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 3, "head_width": 16}}


def write_open_clip_dir(folder: Path, model_cfg: dict, preprocess_cfg=None, seed: int = 0, fmt: str = "safetensors"):
    """An open_clip local-dir checkpoint with seeded random weights, built by open_clip itself; returns the model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}").eval()  # a config without weights: random init
    if fmt == "safetensors": save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    else: torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return model


def images(n=2, shape=(256, 256), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for _ in range(n)]


# ---------------------------------------------------------------- BiomedCLIP's vision config, offline

def test_biomedclip_shaped_local_dir_round_trip(tmp_path):
    t0 = time.perf_counter()
    ref = write_open_clip_dir(tmp_path / "built", {"embed_dim": 512, "vision_cfg": BIOMEDCLIP_VISION, "text_cfg": TINY_TEXT},
                              BIOMEDCLIP_PP)
    bb = load_backbone(f"local-dir:{tmp_path / 'built'}")
    assert bb.weights_fingerprint == weights_fingerprint(ref.visual)
    assert len(bb.default_layers) == 13 and bb.default_layers[0] == "pre_trunk"
    assert bb.default_layers[1:] == tuple(f"trunk.blocks.{i}" for i in range(12))
    assert bb.layers["pre_trunk"] == "trunk.pos_drop" and bb.layers["embedding"] == ""
    assert bb.image_size == 224 and bb.prefix_tokens == 1 and bb.layout == "vit"
    assert bb.preprocess_info["mean"] == BIOMEDCLIP_PP["mean"] and bb.preprocess_info["size"] == [224, 224]
    assert bb.preprocess_info == {**Preprocess.from_open_clip(open_clip.get_model_preprocess_cfg(ref)).info(),
                                  "source": bb.preprocess_info["source"]}

    x = bb.batch(images(2))
    with torch.no_grad(), capture(bb, ["pre_trunk", "trunk.blocks.11", "embedding"]) as acts:
        emb = bb(x)
    with torch.no_grad():
        ref_emb = ref.encode_image(x)
        via_cls = bb.module.head(bb.module.trunk.norm(acts[("trunk.blocks.11", "cls")]))
    assert acts[("pre_trunk", "cls")].shape == (2, 768)
    torch.testing.assert_close(via_cls, ref_emb, atol=1e-5, rtol=0)
    torch.testing.assert_close(acts[("embedding", "cls")], ref_emb, atol=1e-5, rtol=0)
    torch.testing.assert_close(emb, ref_emb, atol=1e-5, rtol=0)

    # BiomedCLIP's real config names a Hugging Face BERT text tower: still no transformers, no network
    hf = tmp_path / "hf-text"; hf.mkdir()
    (hf / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 512, "vision_cfg": BIOMEDCLIP_VISION,
                                                                        "text_cfg": BIOMEDCLIP_TEXT},
                                                          "preprocess_cfg": BIOMEDCLIP_PP}))
    (hf / "open_clip_model.safetensors").symlink_to(tmp_path / "built" / "open_clip_model.safetensors")
    bb2 = load_backbone(f"local-dir:{hf}")
    assert bb2.weights_fingerprint == bb.weights_fingerprint
    assert "BiomedNLP-BiomedBERT" in bb2.meta["text_tower"] and "not built" in bb2.meta["text_tower"]
    assert list_layers(bb2) == list_layers(bb) and bb2.preprocess_info["mean"] == BIOMEDCLIP_PP["mean"]
    with torch.no_grad(): torch.testing.assert_close(bb2(x[:1]), ref_emb[:1], atol=1e-5, rtol=0)
    assert time.perf_counter() - t0 < 120  # a guard (normally ~10-20 s on 2 cores), not a benchmark


def test_write_biomedclip_shaped(tmp_path, monkeypatch):
    """The helper's checkpoint loads as BiomedCLIP's tower; same seed -> the same bytes, another seed -> other weights;
    the global torch RNG is untouched; existing folders are refused; a failed write leaves nothing. Three ~340 MB
    writes (a, b, b again), each a few seconds."""
    import filecmp
    state = torch.random.get_rng_state()
    a = write_biomedclip_shaped(tmp_path / "a", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert sorted(p.name for p in a.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    bb = load_backbone(f"local-dir:{a}")
    assert bb.default_layers == ("pre_trunk", *(f"trunk.blocks.{i}" for i in range(12)))
    assert bb.meta["model_cfg"]["vision_cfg"] == BIOMEDCLIP_VISION and bb.image_size == 224
    assert bb.preprocess_info["mean"] == BIOMEDCLIP_PP["mean"] and bb.preprocess_info["std"] == BIOMEDCLIP_PP["std"]
    with torch.no_grad(), capture(bb, ["pre_trunk", "trunk.blocks.11"]) as acts: bb(bb.batch(images(1)))
    assert acts[("trunk.blocks.11", "cls")].shape == (1, 768) and acts[("pre_trunk", "cls")].shape == (1, 768)
    with pytest.raises(FileExistsError, match="already exists"): write_biomedclip_shaped(a)

    b = write_biomedclip_shaped(tmp_path / "b", seed=1)
    assert load_backbone(f"local-dir:{b}").weights_fingerprint != bb.weights_fingerprint
    assert write_biomedclip_shaped(b, seed=0, overwrite=True) == b
    assert filecmp.cmp(a / "open_clip_model.safetensors", b / "open_clip_model.safetensors", shallow=False)
    assert load_backbone(f"local-dir:{b}").weights_fingerprint == bb.weights_fingerprint

    def boom(**kw): raise RuntimeError("interrupted")                  # fails after the config file is written
    monkeypatch.setattr(open_clip, "CLIP", boom)
    with pytest.raises(RuntimeError, match="interrupted"): write_biomedclip_shaped(tmp_path / "c")
    with pytest.raises(RuntimeError, match="interrupted"): write_biomedclip_shaped(b, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]    # no partial folder; b is intact
    assert filecmp.cmp(a / "open_clip_model.safetensors", b / "open_clip_model.safetensors", shallow=False)
    assert torch.equal(torch.random.get_rng_state(), state)


def _fake_hub_cache(cache: Path, repo: str, files: dict):
    "Lay out `files` {name: source path} as the Hugging Face cache holds a downloaded repo."
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True); (root / "refs" / "main").write_text("0" * 40)
    snap = root / "snapshots" / ("0" * 40); snap.mkdir(parents=True)
    for name, src in files.items(): shutil.copy(src, snap / name)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc
    cache = tmp_path / "hf-cache"; cache.mkdir()
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    return cache


def test_biomedclip_offline_fails_fast_with_remedies(empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as e:
        load_backbone("biomedclip")
    assert time.perf_counter() - t0 < 10  # a guard against waiting for a hub timeout (~23 s), not a benchmark
    msg = str(e.value)
    for part in ("'biomedclip'", BIOMEDCLIP, "HF_HUB_OFFLINE=1 is set", "local-dir:", "open_clip_config.json",
                 "open_clip_model.safetensors", "open_clip_pytorch_model.bin", "hf download", str(empty_hf_cache)):
        assert part in msg, (part, msg)


def test_biomedclip_unreachable_hub_fails_fast(empty_hf_cache, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as hc
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(M, "_hub_probe", lambda timeout=M.HUB_PROBE_TIMEOUT: "simulated: no route to huggingface.co")
    def no_download(*a, **k): raise AssertionError("must not try to download when the probe failed")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="simulated: no route") as e:
        load_backbone("biomedclip")
    assert time.perf_counter() - t0 < 10
    assert "HF_HUB_OFFLINE" in str(e.value) and "local-dir:" in str(e.value)


def test_hub_probe_is_bounded(monkeypatch):
    import huggingface_hub.constants as hc
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"): monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hc, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert "no answer from http://127.0.0.1:9/ (URLError: [Errno 111]" in M._hub_probe(timeout=1.0)
    monkeypatch.setattr(hc, "ENDPOINT", "https://10.255.255.1")  # unroutable: would hang without a timeout
    t0 = time.perf_counter()
    assert M._hub_probe(timeout=0.5) is not None
    assert time.perf_counter() - t0 < 3


def test_hub_ids_load_from_the_local_cache_offline(tmp_path, empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(M, "_hub_probe", lambda timeout=None: pytest.fail("a cached repo needs no network"))
    ref = write_open_clip_dir(tmp_path / "src", SMALL_TIMM_TOWER, BIOMEDCLIP_PP)
    files = {n: tmp_path / "src" / n for n in ("open_clip_config.json", "open_clip_model.safetensors")}
    _fake_hub_cache(empty_hf_cache, BIOMEDCLIP.removeprefix("hf-hub:"), files)
    bb = load_backbone("biomedclip")  # the alias, served from the (fake) cache
    assert bb.key == "biomedclip" and bb.meta["id"] == BIOMEDCLIP
    assert bb.weights_fingerprint == weights_fingerprint(ref.visual)
    x = bb.batch(images(1, (200, 180)))
    with torch.no_grad(): torch.testing.assert_close(bb(x), ref.encode_image(x), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- open_clip towers

def test_open_clip_native_tower_key():
    bb = load_backbone("open_clip:ViT-B-16", vision_cfg={"layers": 2, "width": 64, "head_width": 32, "image_size": 32})
    assert bb.key == "open_clip:ViT-B-16" and bb.meta["weights"] == "random init"
    assert list_layers(bb) == ["pre_trunk", "trunk.blocks.0", "trunk.blocks.1", "embedding"]
    assert bb.layers["pre_trunk"] == "ln_pre" and bb.layers["trunk.blocks.1"] == "transformer.resblocks.1"
    assert bb.seq_first == () and bb.prefix_tokens == 1
    cfg = open_clip.get_model_preprocess_cfg(bb.module)
    assert bb.preprocess_info["size"] == [32, 32] and bb.preprocess_info["mean"] == list(cfg["mean"])
    x = bb.batch(images(3, (50, 40)))
    block0_in = {}
    h = bb.module.transformer.resblocks[0].register_forward_pre_hook(lambda m, args: block0_in.setdefault("x", args[0]))
    try:
        with torch.no_grad(), capture(bb, ["pre_trunk", "trunk.blocks.1", "embedding"], ("cls", "mean")) as acts:
            emb = bb(x)
    finally:
        h.remove()
    assert block0_in["x"].shape == (3, 5, 64)  # batch-first tokens: CLS + 2x2 patches
    torch.testing.assert_close(acts[("pre_trunk", "cls")], block0_in["x"][:, 0])
    torch.testing.assert_close(acts[("pre_trunk", "mean")], block0_in["x"][:, 1:].mean(1))
    v = bb.module
    with torch.no_grad(): torch.testing.assert_close(v.ln_post(acts[("trunk.blocks.1", "cls")]) @ v.proj, emb, atol=1e-5, rtol=0)
    torch.testing.assert_close(acts[("embedding", "cls")], emb)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_open_clip_native_tower_local_dir(tmp_path, fmt):
    pp = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.25], "interpolation": "bilinear", "resize_mode": "squash"}
    ref = write_open_clip_dir(tmp_path, SMALL_NATIVE_TOWER, pp, fmt=fmt)
    bb = load_backbone(f"local-dir:{tmp_path}")
    assert bb.weights_fingerprint == weights_fingerprint(ref.visual)
    assert bb.default_layers == ("pre_trunk", "trunk.blocks.0", "trunk.blocks.1", "trunk.blocks.2")
    info = bb.preprocess_info
    assert (info["mean"], info["std"], info["interpolation"], info["resize_mode"]) == (pp["mean"], pp["std"], "bilinear", "squash")
    x = bb.batch(images(2, (40, 70)))
    assert x.shape == (2, 3, 32, 32)
    with torch.no_grad(): torch.testing.assert_close(bb(x), ref.encode_image(x), atol=1e-5, rtol=0)


def test_open_clip_layers_of_both_tower_kinds():
    timm_tower = M.build_open_clip_visual(SMALL_TIMM_TOWER)
    layers = open_clip_layers(timm_tower)
    assert layers["pre_trunk"] == "trunk.pos_drop" and layers["trunk.blocks.5"] == "trunk.blocks.5"
    assert layers["embedding"] == "" and len(layers) == 8
    native = M.build_open_clip_visual(SMALL_NATIVE_TOWER)
    assert open_clip_layers(native)["pre_trunk"] == "ln_pre"
    with pytest.raises(ValueError, match="not an open_clip ViT tower"): open_clip_layers(nn.Linear(2, 2))


def test_sequence_first_towers_are_transposed():
    "Older open_clip versions ran the vision blocks sequence-first; such a tower is marked and pooled correctly."
    native = M.build_open_clip_visual(SMALL_NATIVE_TOWER)
    del native.transformer.batch_first  # what an old tower looks like to _layer_spec
    spec = M._layer_spec(native)
    assert spec["seq_first"] == ("trunk.blocks.0", "trunk.blocks.1", "trunk.blocks.2")
    tok = torch.randn(4, 3, 6)  # (T, B, D)
    class Enc(nn.Module):
        def __init__(self): super().__init__(); self.enc = nn.Identity()
        def forward(self, x): return self.enc(x)
    bb = Backbone("seq", Enc(), lambda im: im, {"enc": "enc"}, seq_first=("enc",))
    with capture(bb, ["enc"], ("cls", "mean")) as acts: bb(tok)
    torch.testing.assert_close(acts[("enc", "cls")], tok[0])
    torch.testing.assert_close(acts[("enc", "mean")], tok[1:].mean(0))


def test_open_clip_errors(tmp_path):
    with pytest.raises(ValueError, match="close matches: .*ViT-B-16"): load_backbone("open_clip:ViT-B-61")
    with pytest.raises(ValueError, match="tags: .*openai"): load_backbone("open_clip:ViT-B-16@nosuchtag")
    with pytest.raises(FileNotFoundError, match="is not a folder"): load_backbone(f"local-dir:{tmp_path / 'missing'}")
    with pytest.raises(FileNotFoundError, match="no open_clip_config.json"): load_backbone(f"local-dir:{tmp_path}")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": SMALL_NATIVE_TOWER}))
    with pytest.raises(FileNotFoundError, match="no weights file"): load_backbone(f"local-dir:{tmp_path}")
    # weights of another architecture: the strict check on the visual.* names reports what is missing
    torch.manual_seed(0)
    other = open_clip.CLIP(embed_dim=24, text_cfg=TINY_TEXT, vision_cfg={**SMALL_NATIVE_TOWER["vision_cfg"], "layers": 2})
    save_file(other.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    with pytest.raises(ValueError, match=r"do not fit the model config: \d+ missing \['transformer.resblocks.2"):
        load_backbone(f"local-dir:{tmp_path}")
    save_file({"text.weight": torch.zeros(2)}, str(tmp_path / "open_clip_model.safetensors"))
    with pytest.raises(ValueError, match="not an open_clip checkpoint"): load_backbone(f"local-dir:{tmp_path}")
    with pytest.raises(ValueError, match="random-init towers"):
        load_backbone(f"local-dir:{tmp_path}", vision_cfg={"layers": 1})


# ---------------------------------------------------------------- timm and plain modules

TINY_TIMM = dict(depth=2, embed_dim=32, num_heads=2, img_size=48)


def test_timm_key_random_init_and_checkpoint(tmp_path):
    bb = load_backbone("timm:vit_base_patch16_224", **TINY_TIMM)
    assert list_layers(bb) == ["pre_trunk", "trunk.blocks.0", "trunk.blocks.1", "embedding"]
    assert bb.default_layers == ("pre_trunk", "trunk.blocks.0", "trunk.blocks.1")
    info = bb.preprocess_info
    dcfg = resolve_data_config(model=bb.module)
    assert info["size"] == [48, 48] and info["mean"] == list(dcfg["mean"]) and info["interpolation"] == dcfg["interpolation"]
    assert info["scale_size"] == [math.floor(48 / dcfg["crop_pct"])] * 2
    x = bb.batch(images(2, (60, 50)))
    with torch.no_grad(), capture(bb) as acts: emb = bb(x)
    assert acts[("trunk.blocks.1", "cls")].shape == (2, 32) and emb.shape == (2, 32)

    save_file(bb.module.state_dict(), str(tmp_path / "w.safetensors"))
    bb2 = load_backbone("timm:vit_base_patch16_224", checkpoint=tmp_path / "w.safetensors", **TINY_TIMM)
    assert bb2.weights_fingerprint == bb.weights_fingerprint and bb2.meta["weights"].endswith("w.safetensors")
    with torch.no_grad(): torch.testing.assert_close(bb2(x), emb)
    with pytest.raises(FileNotFoundError): load_backbone("timm:vit_base_patch16_224", checkpoint=tmp_path / "nope.pt")


def test_timm_cnn_uses_feature_stages():
    bb = load_backbone("timm:test_resnet")
    stages = [fi["module"] for fi in bb.module.feature_info]
    assert list(bb.default_layers) == stages and bb.layout == "cnn" and list_layers(bb)[-1] == "embedding"
    with torch.no_grad(), capture(bb, poolings="mean") as acts: bb(bb.batch(images(2, (96, 96))))
    assert all(v.ndim == 2 and v.shape[0] == 2 for v in acts.values())


def test_timm_pretrained_fails_fast_offline(empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="checkpoint="):
        load_backbone("timm:vit_small_patch16_224", pretrained=True)


def test_user_modules():
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **TINY_TIMM)
    fn = lambda im: torch.nn.functional.interpolate(torch.as_tensor(im)[None, None], size=(48, 48))[0].expand(3, -1, -1)
    bb = load_backbone(vit, preprocess=fn)
    assert list_layers(bb) == ["pre_trunk", "trunk.blocks.0", "trunk.blocks.1"]
    assert bb.preprocess_info["source"] == "user" and bb.key == "module:VisionTransformer"
    assert load_backbone(vit).preprocess_info["size"] == [48, 48]  # a timm model brings its own data config

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(TypeError, match="pass preprocess="): load_backbone(mlp)
    bbm = load_backbone(mlp, preprocess=lambda im: torch.as_tensor(im, dtype=torch.float32).reshape(1, 4, 4), key="toy-mlp")
    assert list_layers(bbm) == ["0", "1", "2", "3"] and bbm.default_layers == ("0", "1", "2", "3") and bbm.key == "toy-mlp"
    with torch.no_grad(), capture(bbm, ["1", "3"]) as acts: bbm(bbm.batch(images(2, (4, 4))))
    assert acts[("3", "cls")].shape == (2, 2)

    torch.manual_seed(0)
    clip = open_clip.CLIP(**SMALL_NATIVE_TOWER)
    open_clip.set_model_preprocess_cfg(clip, {"size": (32, 32), "mean": (0.1,) * 3, "std": (0.2,) * 3})
    bbc = load_backbone(clip)
    assert bbc.module is clip.visual and bbc.preprocess_info["mean"] == [0.1] * 3 and "embedding" in bbc.layers


def test_layer_selection_and_unknown_layers():
    bb = load_backbone("timm:vit_base_patch16_224", layers=["trunk.blocks.1", "blocks.0.attn"], **TINY_TIMM)
    assert bb.default_layers == ("trunk.blocks.1", "blocks.0.attn") and bb.layers["blocks.0.attn"] == "blocks.0.attn"
    with pytest.raises(KeyError, match=r"valid: \['pre_trunk', 'trunk.blocks.0', 'trunk.blocks.1', 'embedding'"):
        load_backbone("timm:vit_base_patch16_224", layers=["trunk.blocks.7"], **TINY_TIMM)
    with pytest.raises(KeyError, match="valid: "):
        with capture(bb, ["trunk.block.1"]): pass
    bb2 = load_backbone("timm:vit_base_patch16_224", layers={"mlp1": "blocks.1.mlp"}, **TINY_TIMM)
    assert bb2.default_layers == ("mlp1",)
    with pytest.raises(KeyError, match="module path"):
        load_backbone("timm:vit_base_patch16_224", layers={"x": "blocks.9"}, **TINY_TIMM)


def test_hooks_removed_after_exceptions():
    bb = load_backbone("timm:vit_base_patch16_224", **TINY_TIMM)
    n_hooks = lambda: sum(len(m._forward_hooks) for m in bb.module.modules())
    with pytest.raises(RuntimeError, match="inside the block"):
        with capture(bb, list_layers(bb)):
            assert n_hooks() == len(list_layers(bb))
            raise RuntimeError("inside the block")
    assert n_hooks() == 0
    with pytest.raises(Exception):  # the model itself fails mid-forward
        with torch.no_grad(), capture(bb): bb(torch.zeros(1, 3, 17, 17))
    assert n_hooks() == 0


# ---------------------------------------------------------------- registry

def test_unknown_scheme_and_bad_keys():
    with pytest.raises(ValueError, match=r"unknown backbone scheme 'nope'.*known schemes: \[.*'local-dir'.*'open_clip'.*'timm'"):
        load_backbone("nope:x")
    with pytest.raises(ValueError, match="aliases: \\['biomedclip'\\]"): load_backbone("not-a-key")
    with pytest.raises(TypeError): load_backbone(42)
    with pytest.raises(ValueError): register_backbone("bad:scheme", lambda s, **k: None)
    assert {"open_clip", "hf-hub", "local-dir", "timm", "phantom-vit"} <= set(backbone_schemes())


def test_plugin_schemes_are_imported_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "medinterp_test_plugin.py").write_text(
        "import torch\n"
        "from medinterp.models import register_backbone, load_backbone\n"
        "def load_toy(spec, device='cpu', **kw):\n"
        "    return load_backbone('timm:vit_base_patch16_224', device, depth=int(spec), embed_dim=16, num_heads=2, img_size=32)\n"
        "register_backbone('toy-plugin', load_toy)\n")
    (tmp_path / "medinterp_test_silent.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(M._PLUGINS, "toy-plugin", "medinterp_test_plugin")
    monkeypatch.setitem(M._PLUGINS, "silent", "medinterp_test_silent")
    monkeypatch.setitem(M._PLUGINS, "broken", "medinterp_no_such_module")
    monkeypatch.delitem(sys.modules, "medinterp_test_plugin", raising=False)
    assert "toy-plugin" in backbone_schemes() and "medinterp_test_plugin" not in sys.modules
    try:
        bb = load_backbone("toy-plugin:3", layers=["trunk.blocks.2"])
        assert bb.key == "toy-plugin:3" and bb.default_layers == ("trunk.blocks.2",) and len(bb.layers) == 5
        with pytest.raises(RuntimeError, match="did not register"): load_backbone("silent:x")
        with pytest.raises(ImportError, match="medinterp_no_such_module"): load_backbone("broken:x")
    finally:
        M._LOADERS.pop("toy-plugin", None)
        sys.modules.pop("medinterp_test_plugin", None); sys.modules.pop("medinterp_test_silent", None)


def test_device_and_preprocess_override():
    bb = load_backbone("timm:vit_base_patch16_224", device="cpu", preprocess=lambda im: torch.zeros(3, 48, 48), **TINY_TIMM)
    assert bb.device == torch.device("cpu") and bb.preprocess_info["source"] == "user"
    assert len(bb.weights_fingerprint) == 16
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="CUDA is not available"): load_backbone("biomedclip", device="cuda")
        assert time.perf_counter() - t0 < 2  # the device is checked before anything is loaded


# ---------------------------------------------------------------- preprocessing

def gray8(h, w, seed=0):
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.3 * np.sin(xx / 7) * np.cos(yy / 11) + 0.1 * np.random.default_rng(seed).random((h, w))
    img[h // 3:h // 2, w // 4:w // 2] = 0.95
    img[:, :3] = 0.0
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def gray_level_error(ours, theirs, std):
    d = (ours - theirs).abs() * torch.tensor(std)[:, None, None] * 255
    return float(d.max()), float(d.mean())


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shape", [(300, 260), (256, 256), (90, 130)])
def test_preprocess_matches_open_clip_transform(resize_mode, interpolation, shape):
    cfg = {"size": (224, 224), "mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD,
           "interpolation": interpolation, "resize_mode": resize_mode, "fill_color": 0}
    pp = Preprocess.from_open_clip(cfg)
    from open_clip.transform import PreprocessCfg, image_transform_v2
    theirs_tf = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    u8 = gray8(*shape)
    ours, theirs = pp(u8.astype(np.float32) / 255), theirs_tf(Image.fromarray(u8))
    assert ours.shape == theirs.shape == (3, 224, 224)
    worst, mean = gray_level_error(ours, theirs, pp.std)
    assert worst < 1.5 and mean < 0.5, (worst, mean)  # PIL rounds its resized image to 8 bits; we do not
    assert pp(u8).equal(ours)  # uint8 input is scaled the same way


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
def test_preprocess_matches_timm_eval_transform(crop_mode):
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # per-channel values: border fill differs by channel
    dcfg = {**resolve_data_config(model=timm.create_model("test_vit")), "crop_mode": crop_mode, "crop_pct": 0.9,
            "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD}
    pp = Preprocess.from_timm(dcfg)
    u8 = gray8(200, 150)
    theirs = create_transform(**dcfg, is_training=False)(Image.fromarray(u8).convert("RGB"))
    ours = pp(u8.astype(np.float32) / 255)
    assert ours.shape == theirs.shape
    worst, mean = gray_level_error(ours, theirs, pp.std)
    assert worst < 1.5 and mean < 0.5, (worst, mean)


def test_preprocess_keeps_high_bit_depth_and_checks_inputs():
    pp = Preprocess(size=64, mean=0.5, std=0.25)
    img = np.random.default_rng(0).random((80, 72)).astype(np.float32) * 0.5
    a, b = pp(img), pp(img + 1 / 4096)  # one 12-bit step, far below one 8-bit level
    assert (a - b).abs().max() > 0
    assert torch.equal(pp(img), pp(torch.from_numpy(img))) and torch.equal(pp(img), pp(np.repeat(img[..., None], 3, -1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"): pp(img * 4000)
    with pytest.raises(TypeError, match="convert to float32"): pp((img * 4000).astype(np.uint16))
    with pytest.raises(ValueError, match="resize_mode"): Preprocess(size=64, mean=0.5, std=0.25, resize_mode="crop")
    info = pp.info()
    assert json.loads(json.dumps(info)) == info and info["size"] == [64, 64]
    import pickle  # DataLoader workers get a copy
    assert pickle.loads(pickle.dumps(pp)) == pp
