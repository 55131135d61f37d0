"""timm and Hugging Face checkpoints both ways (pretrain.checkpoints formats.py and convert.py,
tools/convert_checkpoint.py): timm's and transformers' own models at tiny sizes with random weights (no
download), their files read by our loaders, ours written for them, features compared, round trips exact."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from pretrain.checkpoints import (
    CheckpointError, CheckpointKind, CheckpointMismatchError, FormatMismatchError, atomic_save, classify_checkpoint,
    convert_file, load_pretrained, read_checkpoint, read_state_dict, to_official,
)
from pretrain.models import build_model
from tool_module import load_tool
from transfer.backbones import build_backbone, load_backbone_checkpoint

transformers = pytest.importorskip("transformers")

TINY = dict(img_size=64, patch_size=16, embed_dim=96, depth=2, num_heads=3)  # mae_vit_tiny's encoder
NOISE = torch.arange(16.0).expand(2, 16)  # keeps every patch in order (mask ratio 0)
IMGS = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
TOL = 1e-5  # measured max |diff| is 0 (same ops, same order) up to 1e-6 (LayerNorm eps 1e-12 vs 1e-6)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _ours_features(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval().forward_encoder(IMGS, 0.0, NOISE)[0]  # [N, 1 + L, D] after the final norm


def _hf_config(**kw):
    sizes = dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, intermediate_size=384, image_size=64,
                 patch_size=16, decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=256, layer_norm_eps=1e-6)
    return transformers.ViTMAEConfig(**{**sizes, **kw})


def _hf_model(**kw):
    torch.manual_seed(1)
    model = transformers.ViTMAEForPreTraining(_hf_config(**kw)).eval()
    with torch.no_grad():  # HF initialises biases / LayerNorms to 0 / 1: random values test the mapping
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def _hf_features(model) -> torch.Tensor:
    ratio, model.config.mask_ratio = model.config.mask_ratio, 0.0  # every patch, as ours
    with torch.no_grad():
        out = model.vit(IMGS, noise=NOISE).last_hidden_state
    model.config.mask_ratio = ratio
    return out


@pytest.fixture
def ours(tmp_path):
    torch.manual_seed(2)
    model = build_model("mae_vit_tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path / "ours.pth"
    atomic_save({"model": model.state_dict()}, path)
    return model, path


# ------------------------------------------------------------------------------------ reading theirs
def test_timm_safetensors_file_loads_into_our_encoder_with_equal_features(tmp_path):
    torch.manual_seed(3)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **TINY).eval()
    save_file(vit.state_dict(), tmp_path / "model.safetensors")
    assert classify_checkpoint(read_checkpoint(tmp_path / "model.safetensors")) is CheckpointKind.ENCODER
    model = build_model("mae_vit_tiny")
    missing = load_pretrained(model, tmp_path / "model.safetensors")
    assert not [k for k in missing if not k.startswith(("decoder_", "mask_token"))]
    with torch.no_grad():
        diff = (vit.forward_features(IMGS) - _ours_features(model)).abs().max().item()
    assert diff <= TOL, diff


@pytest.mark.parametrize("layout", ["save_pretrained", "modules"])
def test_hugging_face_file_loads_into_our_mae_with_equal_features_and_reconstructions(tmp_path, layout):
    """Both layouts transformers 5 produces: ``save_pretrained``'s file (4.x encoder names, decoder as
    ``decoder.decoder_encoder.layer.N``) and its modules' own names (``vit.layers.N.attention.q_proj``)."""
    hf = _hf_model()
    if layout == "save_pretrained":
        hf.save_pretrained(tmp_path)
    else:
        save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, tmp_path / "model.safetensors")
    path = tmp_path / "model.safetensors"
    assert classify_checkpoint(read_checkpoint(path)) is CheckpointKind.HF_VIT
    model = build_model("mae_vit_tiny")
    assert load_pretrained(model, path) == []  # encoder and decoder: every parameter
    assert (_hf_features(hf) - _ours_features(model)).abs().max().item() <= TOL
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        theirs = hf(IMGS, noise=noise)
        _, pred, mask = model(IMGS, mask_ratio=0.75, noise=noise)
    assert torch.equal(mask, theirs.mask) and (pred - theirs.logits).abs().max().item() <= TOL


def test_hugging_face_file_initialises_our_transfer_backbone(tmp_path, caplog):
    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    backbone = build_backbone("mae_vit_tiny", img_size=64)
    with caplog.at_level("INFO", logger="pretrain.checkpoints.loading"):
        report = load_backbone_checkpoint(backbone, tmp_path / "model.safetensors")
    assert "Hugging Face" in caplog.text  # the name conversion is reported
    assert not [k for k in report.missing if "rel_pos" not in k]  # only the tables MAE files never have
    assert torch.equal(backbone.state_dict()["blocks.1.mlp.fc2.weight"], hf.vit.layers[1].mlp.fc2.weight)


# ------------------------------------------------------------------------------------ writing ours
def test_ours_to_timm_loads_in_timm_with_every_key_and_equal_features(ours, tmp_path):
    model, path = ours
    out = tmp_path / "timm.safetensors"
    result = convert_file(path, out, "timm")
    assert result.encoder == "mae_vit_tiny" and "timm.create_model('vit_base_patch16_224.mae'" in result.load_with
    vit = timm.create_model("vit_base_patch16_224.mae", pretrained=True, pretrained_cfg_overlay=dict(file=str(out)),
                            **TINY).eval()
    encoder = model.encoder_state_dict()
    assert vit.state_dict().keys() == encoder.keys()
    assert all(torch.equal(vit.state_dict()[k], encoder[k]) for k in encoder)  # nothing left at timm's init
    with torch.no_grad():
        assert (vit.forward_features(IMGS) - _ours_features(model)).abs().max().item() <= TOL


def test_ours_to_hugging_face_loads_with_no_missing_keys_and_equal_features(ours, tmp_path):
    model, path = ours
    convert_file(path, tmp_path / "hf", "hf")
    hf, info = transformers.ViTMAEForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert (_hf_features(hf.eval()) - _ours_features(model)).abs().max().item() <= TOL
    encoder_only, info = transformers.ViTMAEModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"]


def test_sim_encoder_to_timm_and_hugging_face(tmp_path):
    torch.manual_seed(5)
    sim = build_model("sim_vit_tiny").eval()
    atomic_save({"model": sim.state_dict()}, tmp_path / "sim.pth")
    result = convert_file(tmp_path / "sim.pth", tmp_path / "sim.safetensors", "timm")
    assert result.encoder == "sim_vit_tiny" and "final_norm=False" in result.load_with
    vit = timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0, final_norm=False,
                            pretrained_cfg_overlay=dict(file=str(tmp_path / "sim.safetensors")),
                            img_size=64, embed_dim=64, depth=2, num_heads=2).eval()
    assert all(torch.equal(v, sim.state_dict()[k]) for k, v in vit.state_dict().items())
    convert_file(tmp_path / "sim.pth", tmp_path / "hf", "hf")
    hf, info = transformers.ViTMAEModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"]
    hf.config.mask_ratio = 0.0
    with torch.no_grad():
        last_block = hf(IMGS, noise=NOISE, output_hidden_states=True).hidden_states[-1]
        ours = vit.forward_features(IMGS)  # SIM's encoder output: no final norm
    assert (last_block - ours).abs().max().item() <= TOL


# ------------------------------------------------------------------------------------ round trips, CLI
@pytest.mark.parametrize("fmt, out", [("timm", "t.safetensors"), ("timm", "t.pth"), ("hf", "hf")])
def test_round_trip_ours_to_theirs_and_back_is_exact(ours, tmp_path, fmt, out):
    model, path = ours
    written = tmp_path / out
    convert_file(path, written, fmt)
    source = written / "model.safetensors" if fmt == "hf" else written
    back = tmp_path / "back.pth"
    convert_file(source, back, "official")
    state = read_state_dict(back)
    expected = model.state_dict() if fmt == "hf" else model.encoder_state_dict()  # timm holds no decoder
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_convert_tool_writes_every_format(ours, tmp_path, capsys):
    tool = load_tool("convert_checkpoint")
    _, path = ours
    assert tool.main([str(path), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert tool.main([str(tmp_path / "hf" / "model.safetensors"), str(tmp_path / "o.pth"), "--to", "official"]) == 0
    assert tool.main([str(tmp_path / "o.pth"), str(tmp_path / "t.safetensors"), "--to", "timm",
                      "--backbone", "mae_vit_tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote ") == 3 and "ViTMAEForPreTraining.from_pretrained" in out


# ------------------------------------------------------------------------------------ refusals
def test_convmae_has_no_timm_or_hugging_face_counterpart(tmp_path, capsys):
    atomic_save({"model": build_model("convmae_tiny").state_dict()}, tmp_path / "c.pth")
    for fmt in ("timm", "hf"):
        with pytest.raises(FormatMismatchError):
            convert_file(tmp_path / "c.pth", tmp_path / f"c_{fmt}", fmt)
    assert load_tool("convert_checkpoint").main([str(tmp_path / "c.pth"), str(tmp_path / "x"), "--to", "hf"]) == 1


def test_files_with_parts_our_vit_lacks_are_refused(tmp_path):
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, reg_tokens=4, **TINY)
    with pytest.raises(FormatMismatchError):
        to_official(vit.state_dict())
    hf = _hf_model().state_dict()
    hf["vit.layers.0.attention.lambda_q.weight"] = torch.zeros(3)  # a layer part ViTMAE does not have
    with pytest.raises(FormatMismatchError):
        to_official(hf)
    del hf["vit.layers.0.attention.lambda_q.weight"], hf["vit.layers.1.attention.k_proj.weight"]
    with pytest.raises(FormatMismatchError):  # query / key / value incomplete
        to_official(hf)


def test_hugging_face_file_of_another_size_is_refused_by_our_loaders(tmp_path):
    hf = transformers.ViTMAEForPreTraining(_hf_config(hidden_size=48, intermediate_size=192))
    hf.save_pretrained(tmp_path)
    with pytest.raises(CheckpointMismatchError):
        load_pretrained(build_model("mae_vit_tiny"), tmp_path / "model.safetensors")
    with pytest.raises(CheckpointMismatchError):
        load_backbone_checkpoint(build_backbone("mae_vit_tiny", img_size=64), tmp_path / "model.safetensors")


def test_truncated_safetensors_file_is_a_checkpoint_error(tmp_path):
    save_file({"a": torch.zeros(1000)}, tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "cut.safetensors")


def test_visualize_draws_from_a_hugging_face_pretraining_file(tmp_path):
    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    model = load_tool("visualize").load_pretraining_model(str(tmp_path / "model.safetensors"), "mae_vit_tiny")
    assert torch.equal(model.decoder_pred.weight, hf.decoder.decoder_pred.weight)


@pytest.mark.heavy  # imports detectron2 and mmseg
def test_detection_and_segmentation_weights_take_a_hugging_face_file(tmp_path):
    """tools/train_det.py --weights (transfer.det.weights.load_weights) and tools/train_seg.py's backbone
    checkpoint (MIMViT's init_cfg): the same file, every trunk parameter loaded."""
    from transfer.det.weights import load_weights
    from transfer.seg.backbones import MIMViT

    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    path = str(tmp_path / "model.safetensors")
    detector = torch.nn.Module()
    detector.backbone = torch.nn.Module()
    detector.backbone.net = build_backbone("mae_vit_tiny", img_size=64)
    assert load_weights(detector, path) is CheckpointKind.HF_VIT  # leaves nothing but rel-pos tables at init
    segmentor_backbone = MIMViT(name="mae_vit_tiny", out_indices=(1,), pretrained=path, img_size=64)
    segmentor_backbone.init_weights()
    expected = hf.vit.layers[0].attention.o_proj.weight
    assert torch.equal(detector.backbone.net.blocks[0].attn.proj.weight, expected)
    assert torch.equal(segmentor_backbone.net.blocks[0].attn.proj.weight, expected)


def test_an_encoder_of_unlisted_size_needs_its_name_and_sizes(tmp_path):
    """The head count is in no tensor's shape: a size the table does not list is refused until the tool
    is told which encoder (and sizes) the file holds."""
    model = build_model("mae_vit_tiny", embed_dim=48, num_heads=4)
    atomic_save({"model": model.encoder_state_dict()}, tmp_path / "encoder.pth")
    tool = load_tool("convert_checkpoint")
    assert tool.main([str(tmp_path / "encoder.pth"), str(tmp_path / "hf"), "--to", "hf"]) == 1
    assert tool.main([str(tmp_path / "encoder.pth"), str(tmp_path / "hf"), "--to", "hf", "--backbone", "mae_vit_tiny",
                      "embed_dim=48", "num_heads=4"]) == 0
    hf, info = transformers.ViTMAEModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and hf.config.num_attention_heads == 4
