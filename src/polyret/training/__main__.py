"""``python -m polyret.training --config run.yaml [key=value ...]``: train one model (also under torchrun).

The thin entry for ``torchrun --nproc_per_node N -m polyret.training ...`` and ``accelerate launch -m
polyret.training ...``: it reads the config and calls :func:`polyret.training.train`, which builds
everything the run needs (the dev evaluator included). User errors print ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from polyret import process_env  # noqa: F401  (before numpy loads: see its docstring)
from polyret.errors import PolyretError
from polyret.training.config import ConfigError, TrainConfig


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m polyret.training --config run.yaml [key=value ...]`` (also under torchrun).

    Args:
        argv: the command line after the program name (None: ``sys.argv[1:]``).

    Returns:
        0 with the final model folder printed; 2 on a config, data or file-system error.
    """
    parser = argparse.ArgumentParser(prog="python -m polyret.training", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML/JSON training config")
    parser.add_argument("--recipe", help="start from a named recipe (paper, cpu)")
    parser.add_argument("--dry-run", action="store_true", help="resolve the plan (data, steps, batches, memory) and stop")
    parser.add_argument("--world-size", type=int, help="with --dry-run: plan for this many processes (simulated)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. alpha=0.3 languages=de,en")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if ns.config and ns.recipe:
            raise ConfigError("give --config or --recipe, not both (a config file may say `recipe: cpu`)")
        if ns.config:
            config = TrainConfig.from_file(ns.config)
        elif ns.recipe:
            config = TrainConfig.from_recipe(ns.recipe)
        else:
            config = TrainConfig()
        config = config.with_overrides(ns.overrides)
        if ns.world_size is not None and not ns.dry_run:
            raise ConfigError("--world-size only plans (--dry-run); launch with torchrun --nproc_per_node N to train")
        if ns.dry_run:
            from polyret.training.plan import dry_run

            for line in dry_run(config, world_size=ns.world_size).lines():
                print(line)
            return 0
        from polyret.training.trainer import (
            train,  # torch and sentence-transformers load here
        )

        path = train(config)
    except (PolyretError, OSError) as error:  # user errors (TrainingDiverged, a full disk too): exit 2
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
