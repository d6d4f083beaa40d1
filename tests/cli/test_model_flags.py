"""Model flags are generated from ModelConfig's fields: every field has one, with help text."""

from __future__ import annotations

from dataclasses import fields

from iefvad.cli.options import model_dest, model_fields, train_parser
from iefvad.models.model import ModelConfig


def test_every_model_field_has_a_flag_with_help() -> None:
    actions: dict = {}
    for a in train_parser()._actions:  # the first action of a dest sets its default
        actions.setdefault(a.dest, a)
    for f in fields(ModelConfig):
        a = actions.get(model_dest(f))
        assert a is not None, f"ModelConfig.{f.name} has no flag: give it _opt(...) metadata"
        assert a.default is None, f"--{model_dest(f)} must default to None (the field fills it)"
        assert f.metadata.get("help") and a.help, f"ModelConfig.{f.name} has no help text"
        if "choices" in f.metadata:
            assert tuple(a.choices) == tuple(f.metadata["choices"])
        elif not isinstance(f.default, bool):
            assert a.type is type(f.default)


def test_flags_round_trip_to_model_config() -> None:
    flags = "--embed_dim 16 --heads 2 --nu 4 --no_mask_padding --fusion concat".split()
    args = train_parser().parse_args(flags)
    cfg = ModelConfig(**model_fields(args))
    got = (cfg.dim, cfg.heads, cfg.nu, cfg.mask_padding, cfg.fusion)
    assert got == (16, 2, 4.0, False, "concat")
    assert model_fields(train_parser().parse_args([])) == {}
    assert ModelConfig.released().fusion == "reference" and not ModelConfig.released().mask_padding
