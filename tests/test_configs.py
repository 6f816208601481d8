"""The config layer (``polyret.configs``) and the three public configs built on it: frozen, validated on
construction with a ``ConfigError`` naming the key, read from YAML/JSON, ``to_dict`` -> ``from_dict`` round
trips, immutable presets and recipes."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re

import pytest

from polyret.configs import FrozenDict, coerce, load_mapping, renamed_error
from polyret.errors import ConfigError
from polyret.evaluation import EvalConfig
from polyret.experiment import PRESETS, ExperimentConfig
from polyret.training import RECIPES, TrainConfig

# ---------------------------------------------------------------------- the base


def test_frozen_dict_reads_as_a_dict_and_refuses_every_change():
    d = FrozenDict({"a": 1, "b": (1, 2)})
    assert d == {"a": 1, "b": (1, 2)} and isinstance(d, dict) and json.loads(json.dumps(d)) == {"a": 1, "b": [1, 2]}
    for change in (
        lambda: d.__setitem__("a", 2),
        lambda: d.__delitem__("a"),
        lambda: d.update(a=2),
        lambda: d.pop("a"),
        lambda: d.setdefault("c", 3),
        lambda: d.clear(),
        lambda: d.popitem(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert d == {"a": 1, "b": (1, 2)}
    assert copy.deepcopy(d) == d and pickle.loads(pickle.dumps(d)) == d and isinstance(copy.copy(d), FrozenDict)
    assert hash(d) == hash(FrozenDict({"b": (1, 2), "a": 1}))
    assert {**d, "a": 5} == {"a": 5, "b": (1, 2)}  # a changed copy is a plain dict


@pytest.mark.parametrize(
    "value, hint, expected",
    [
        ("3", int, 3),
        (3.0, int, 3),
        (2, float, 2.0),
        ("de, en", tuple[str, ...], ("de", "en")),
        (["de", "en"], tuple[str, ...], ("de", "en")),
        ("none", int | None, None),
        ("yes", bool, True),
        ("{a: 1}", dict[str, int], {"a": 1}),
    ],
)
def test_coerce_parses_strings_and_shapes_values(value, hint, expected):
    assert coerce("key", value, hint) == expected


@pytest.mark.parametrize("value, hint", [(True, int), ("x", int), (2.5, int), ([1], str), (None, int), ({"a": 1}, int)])
def test_coerce_refuses_a_wrong_type_naming_the_key(value, hint):
    with pytest.raises(ConfigError, match="^key"):
        coerce("key", value, hint)


def test_load_mapping_refuses_duplicate_keys_and_names_the_position(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("a: 1\nb: 2\na: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:3: duplicate key 'a' \(first on line 1\)"):
        load_mapping(f)
    f = tmp_path / "c.json"
    f.write_text('{"a": 1, "a": 2}')
    with pytest.raises(ConfigError, match=r"c\.json: duplicate key 'a'"):
        load_mapping(f)
    f = tmp_path / "bad.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: cannot parse config: line \d+, column \d+"):
        load_mapping(f)


def test_a_config_error_names_its_key_and_an_option_can_take_its_place():
    with pytest.raises(ConfigError) as info:
        EvalConfig(batch_size=0)
    assert info.value.key == "batch_size" and str(info.value) == "invalid evaluation config: batch_size must be >= 1, got 0"
    assert str(renamed_error(info.value, lambda k: "--" + k.replace("_", "-"))) == "--batch-size must be >= 1, got 0"


# ---------------------------------------------------------------------- every config refuses bad values

BAD = {
    EvalConfig: [
        ({"backend": "fais"}, "backend"),
        ({"k": 0}, "k"),
        ({"families": ["multy"]}, "families"),
        ({"families": []}, "families"),
        ({"measures": ["mapp"]}, "measures"),
        ({"measures": ["Judged@200"]}, "measures"),  # deeper than k=100
        ({"precision": "fp8"}, "precision"),
        ({"store_dtype": "int8"}, "store_dtype"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_seq_length": 0}, "max_seq_length"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"store_threshold": -1}, "store_threshold"),
        ({"languages": []}, "languages"),
        ({"languages": ["DE"]}, "languages"),
        ({"bias_measures": ["peerr"]}, "bias_measures"),
        ({"debias": "tilt", "debias_fit": "xquad-r:train"}, "debias"),
        ({"devices": ["gpu 1"]}, "devices"),
        ({"k": "ten"}, "k"),
        ({"cache": "maybe"}, "cache"),
    ],
    TrainConfig: [
        ({"alpha": 1.5}, "alpha"),
        ({"batch_size": 1}, "batch_size"),
        ({"strategy": "both"}, "strategy"),
        ({"precision": "fp8"}, "precision"),
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"max_steps": 0}, "max_steps"),
        ({"languages": ["de"], "strategy": "cross"}, "strategy"),
        ({"train": []}, "train"),
        ({"grad_accum_steps": 0}, "grad_accum_steps"),
        ({"batch_scope": "node"}, "batch_scope"),
        ({"trainer_args": {"learning_rate": 1e-4}}, "trainer_args"),
        ({"trainer_args": ["report_to"]}, "trainer_args"),
        ({"seed": "x"}, "seed"),
    ],
    ExperimentConfig: [
        ({"seeds": 0}, "seeds"),
        ({"first_seed": -1}, "first_seed"),
        ({"strategies": ("sideways",)}, "strategies"),
        ({"strategies": ()}, "strategies"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha_sweep": (2.0,)}, "alpha_sweep"),
        ({"recipe": "gpu"}, "recipe"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"eval_max_seq_length": 0}, "eval_max_seq_length"),
        ({"preset": "fast"}, "preset"),
        ({"benchmarks": ()}, "benchmarks"),
        ({"benchmarks": ("xquad-r:tset",)}, "benchmarks"),
        ({"eval_overrides": {"backend": "fais"}}, "eval_overrides"),
        ({"eval_overrides": {"k": 0}}, "eval_overrides"),
        ({"eval_overrides": {"batch_size": 8}}, "eval_overrides"),
        ({"train_overrides": [1]}, "train_overrides"),
        ({"seeds": "two"}, "seeds"),
    ],
}


@pytest.mark.parametrize("cls, values, key", [(cls, values, key) for cls, cases in BAD.items() for values, key in cases], ids=str)
def test_every_config_refuses_a_bad_value_on_construction_naming_the_key(cls, values, key):
    with pytest.raises(ConfigError) as info:
        cls(**values)
    assert info.value.key == key and key in str(info.value)
    with pytest.raises(ConfigError, match=key):  # and on replace, from a valid config
        cls().replace(**values)


@pytest.mark.parametrize("cls", [EvalConfig, TrainConfig, ExperimentConfig])
def test_every_config_is_frozen(cls):
    config = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, name, "x")
    for f in dataclasses.fields(cls):  # no list or dict a caller could change in place
        assert not isinstance(getattr(config, f.name), list)
        assert not isinstance(getattr(config, f.name), dict) or isinstance(getattr(config, f.name), FrozenDict)


@pytest.mark.parametrize("cls, typo, hint", [(EvalConfig, "bakend", "backend"), (TrainConfig, "lrr", "lr"),
                                             (ExperimentConfig, "seedz", "seeds")])  # fmt: skip
def test_an_unknown_key_is_refused_with_a_did_you_mean(cls, typo, hint):
    with pytest.raises(ConfigError, match=rf"unknown \w+ config key\(s\) \['{typo}'\] \(did you mean '{hint}'\?\)"):
        cls.from_dict({typo: 1}, source="my.yaml")
    with pytest.raises(ConfigError, match=f"did you mean '{hint}'"):
        cls().replace(**{typo: 1})


# ---------------------------------------------------------------------- round trips

ROUND_TRIPS = [
    EvalConfig(backend="faiss", k=20, measures=("nDCG@10", "AP"), languages=("de", "en"), devices=None),
    TrainConfig(languages=("de", "en"), lora_target_modules=("query",), lora_r=4, trainer_args={"max_grad_norm": 0.5}),
    *PRESETS.values(),
    PRESETS["smoke"].replace(eval_overrides={"backend": "faiss", "store_dtype": "float16"}, remedies=("base+shift",)),
]


@pytest.mark.parametrize("config", ROUND_TRIPS, ids=lambda c: type(c).__name__)
def test_to_dict_from_dict_and_files_round_trip(config, tmp_path):
    cls = type(config)
    record = config.to_dict()
    assert json.loads(json.dumps(record)) == record  # JSON-ready: lists and dicts only
    assert cls.from_dict(record) == config
    (tmp_path / "c.json").write_text(json.dumps(record))
    assert cls.from_file(tmp_path / "c.json") == config
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(record))
    assert cls.from_file(tmp_path / "c.yaml") == config


def test_replace_parses_strings_as_set_does_and_validates():
    config = EvalConfig().replace(k="10", measures="nDCG@10,AP", families="mono,multi", devices="none")
    assert config.k == 10 and config.measures == ("ndcg@10", "map") and config.families == ("mono", "multi")
    assert EvalConfig().with_overrides(["backend=faiss", "store-dtype=float16"]).store_dtype == "float16"
    with pytest.raises(ConfigError, match="k must be >= 1"):
        config.replace(k="0")


# ---------------------------------------------------------------------- presets and recipes


def test_presets_and_recipes_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["cpu"].seeds = 3
    with pytest.raises(TypeError):
        PRESETS["cpu"].train_overrides["max_steps"] = 1
    with pytest.raises(TypeError):
        PRESETS["mine"] = ExperimentConfig()
    with pytest.raises(TypeError):
        RECIPES["cpu"] = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["cpu"].lr = 1.0
    more = PRESETS["cpu"].replace(seeds=3)
    assert more.seeds == 3 and PRESETS["cpu"].seeds == 1 and more.preset == "cpu"


# ---------------------------------------------------------------------- field help: described once


def _config_classes() -> list[type]:
    """Every ConfigBase subclass polyret defines (the three public configs, and any later one)."""
    from polyret.configs import ConfigBase

    out, todo = [], list(ConfigBase.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return [c for c in out if c.__module__.startswith("polyret.")]


def test_every_config_field_is_described_once_in_its_class_docstring():
    classes = _config_classes()
    assert {EvalConfig, TrainConfig, ExperimentConfig} <= set(classes)
    for cls in classes:
        docs = cls.field_docs()
        missing = [f for f in cls.field_names() if f not in docs]
        stale = [name for name in docs if name not in cls.field_names()]  # an entry for a field that went
        assert not missing, f"{cls.__name__}: add an Args entry for {missing} to its docstring (the CLI help)"
        assert not stale, f"{cls.__name__}: its docstring describes {stale}, which are not fields"
        for name in cls.field_names():
            text = cls.field_help(name)
            assert len(text) >= 10 and "\n" not in text, (cls.__name__, name, text)
            assert text.split(" ")[0] in " ".join(cls.__doc__.split())  # help(cls) shows the same words
    with pytest.raises(KeyError, match="no field"):
        EvalConfig.field_help("kk")


def test_docstring_args_reads_entries_grouped_names_and_continuations():
    from polyret.configs import docstring_args, plain_help

    doc = """Summary.

    Args:
        a: first line
            continued ``x`` here.
        b, c: shared (None: off).
        d: :func:`polyret.models.load` spec.

    Raises:
        e: not an argument.
    """
    assert docstring_args(doc) == {
        "a": "first line continued ``x`` here.",
        "b": "shared (None: off).",
        "c": "shared (None: off).",
        "d": ":func:`polyret.models.load` spec.",
    }
    assert docstring_args("No args here.") == {} and docstring_args(None) == {}
    assert plain_help("first ``x`` here") == "First x here."
    assert plain_help("shared (None: all)", none="0") == "Shared (0: all)"
    assert plain_help("cut to ``max_tokens``; see ``k``", names={"max_tokens": "--max-tokens"}) == "Cut to --max-tokens; see k."
    assert plain_help(":func:`polyret.models.load` spec") == "Polyret.models.load spec."
    # API cross-references are for help(cls): alone in parentheses or ending a clause, the CLI leaves them out
    assert plain_help("the strategy (:data:`polyret.vocabulary.STRATEGIES`)") == "The strategy."
    assert plain_help("auto (bf16 or fp32; see :func:`polyret.precision.resolve`), fp32") == "Auto (bf16 or fp32), fp32."
    assert plain_help("a bare method; methods: :data:`polyret.evaluation.debias.METHODS`.") == "A bare method."


# a command's option -> the config field it sets, where the option is named otherwise (--output is output_dir)
_FIELD_OF = {("train", "output"): "output_dir"}
# how an option spells the field's None where it is not "unset" (left out)
_NONE = {("evaluate", "debias_fit_max_queries"): "0"}


def test_cli_options_that_set_a_config_field_take_its_help_and_default():
    """Every option of evaluate / score / train / experiment whose name is a config field's: its help is the
    field's (the class docstring's Args entry, then what only the command line says) and its default the
    field's (evaluate, score; or none: a required option), or None / the field's (train and experiment: the
    option overrides a config file, recipe or preset only when given). A new option or field cannot drift
    from the other."""
    import typer.main

    from polyret.cli import app
    from polyret.configs import plain_help

    commands = typer.main.get_command(app).commands
    checked = {}
    verbs = (("evaluate", EvalConfig), ("score", EvalConfig), ("train", TrainConfig), ("experiment", ExperimentConfig))
    for verb, cls in verbs:
        fields = set(cls.field_names())
        mirrored = {}
        for param in commands[verb].params:
            spelled = {param.name, *(o.lstrip("-").split("/")[0].replace("-", "_") for o in param.opts)}
            name = _FIELD_OF.get((verb, param.name)) or next((n for n in sorted(spelled) if n in fields), None)
            if name is not None:
                mirrored[name] = param
        names = {name: param.opts[0] for name, param in mirrored.items()}  # how the help names other fields
        for name, param in mirrored.items():
            expected = plain_help(cls.field_help(name), none=_NONE.get((verb, name), "unset"), names=names)
            assert param.help.startswith(expected), (verb, name, param.help, expected)
            assert not re.search(r"\bpolyret\.\w", param.help), (verb, name, param.help)  # API refs: for help(cls)
            default = cls.default(name)
            default = ",".join(default) if isinstance(default, tuple) else default
            if verb in ("evaluate", "score"):
                assert param.default == default or param.required, (verb, name, param.default, default)
            else:
                assert param.default in (None, default), (verb, name, param.default, default)
        checked[verb] = set(mirrored)
    assert len(checked["evaluate"]) >= 24 and {"k", "measures", "backend", "precision"} <= checked["evaluate"]
    assert {"benchmark", "languages", "families", "measures", "data_dir", "bias_measures"} <= checked["score"]
    assert {"model", "train", "strategy", "output_dir", "seed", "resume", "dev"} <= checked["train"]
    assert {"preset", "output", "seeds", "remedies", "keep_models"} <= checked["experiment"]


def test_the_default_measures_of_evaluate_and_score_are_the_fields():
    """--measures defaults to the field's measures (as comma-separated text), so a run without it is scored
    as EvalConfig() is."""
    import typer.main

    from polyret.cli import _split, app

    command = typer.main.get_command(app).commands["evaluate"]
    default = next(p.default for p in command.params if p.name == "measures")
    assert EvalConfig(measures=_split(default)).measures == EvalConfig().measures
    from polyret.cli import _measures
    from polyret.vocabulary import DEFAULT_MEASURES

    score = typer.main.get_command(app).commands["score"]
    assert _measures(next(p.default for p in score.params if p.name == "measures")) == list(DEFAULT_MEASURES)


def test_train_set_help_names_every_alias():
    import typer.main

    from polyret.cli import app

    command = typer.main.get_command(app).commands["train"]
    text = next(p.help for p in command.params if p.name == "set_")
    for alias, key in TrainConfig.ALIASES.items():
        assert f"{alias} is {key}" in text
    assert "per_device_train_batch_size" in text
