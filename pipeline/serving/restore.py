"""`digit-restore`: restore and read your own images of digits.

    digit-restore scan.png                               # the blind restorer finds the damage itself
    digit-restore number.png --phone --show-damage       # a 10-digit phone number as one wide image
    digit-restore photo.png --box 10,8,12,12            # a known hole (row,col,h,w in its pixels)
    digit-restore scans/ --mask hole.png                 # every PNG/JPEG in a folder, one mask image for all
    digit-restore scan.png --model models:/digit-restore-mnist@champion

Each image is put into MNIST's 28x28 frame (pipeline/serving/preprocess.py), its damage restored by the
generator and the result read by the classifier (pipeline/serving/chain.py). A blind generator (the default
recipe) needs no hole: it finds what is missing; --box / --mask / --fill-value say where pixels are
known to be missing, and a generator trained with the hole as input (gan.recipe given_hole) needs one.
Written to --out: one restored PNG per input (28x28; 28x280 for a phone number), with --show-damage
a `<name>_damage.png` beside it (white: the pixels it found damaged and filled), and predictions.csv,
one row per input.
Models: data/gan/generator.keras and data/classifier/model.keras of --project (the pipeline's
outputs) by default, or a registered chain with --model (store: $MLFLOW_TRACKING_URI, else the
project's mlflow.db). Every input is read and checked before any model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from pipeline.common.atomic import atomic_path, save_csv
from pipeline.common.errors import PipelineError
from pipeline.serving import preprocess

PHONE_DIGITS = 10
CSV_NAME = "predictions.csv"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="digit-restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="PNG/JPEG files or folders of them")
    hole = parser.add_mutually_exclusive_group()
    hole.add_argument("--box", type=preprocess.parse_box, help="the hole as row,col,h,w in the input's pixels")
    hole.add_argument("--mask", type=Path, help="the hole as an image of the input's size: light = missing")
    hole.add_argument("--fill-value", type=int, help="the hole is every pixel of exactly this value (0..255)")
    parser.add_argument("--phone", action="store_true", help=f"each input is a {PHONE_DIGITS}-digit number in one row")
    parser.add_argument(
        "--show-damage",
        action="store_true",
        help="also write <name>_damage.png: white where the restorer found damage and filled it",
    )
    parser.add_argument("--out", type=Path, default=Path("restored"), help="output folder (default: restored)")
    parser.add_argument("--model", help="a registered chain, e.g. models:/digit-restore-mnist@champion")
    parser.add_argument("--project", type=Path, default=Path("."), help="project whose data/ holds the models")
    return parser.parse_args(argv)


def input_files(inputs: list[Path], exclude: set[Path]) -> list[Path]:
    """The files named, and the PNG/JPEG files directly inside the folders named (sorted)."""
    files = []
    for path in inputs:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in preprocess.IMAGE_SUFFIXES and p.resolve() not in exclude
            )
            if not found:
                raise PipelineError(f"{path}: the folder holds no PNG or JPEG images")
            files += found
        else:
            files.append(path)
    return files


def check_outputs(files: list[Path], out: Path) -> None:
    """No restored PNG may overwrite an input or another restored PNG."""
    stems = [f.stem for f in files]
    clash = next((s for s in stems if stems.count(s) > 1), None)
    if clash:
        raise PipelineError(f"two inputs are named {clash!r}; their restored PNGs would overwrite each other")
    clobbered = next((f for f in files if (out / f"{f.stem}.png").resolve() == f.resolve()), None)
    if clobbered:
        raise PipelineError(
            f"--out {out}: the restored PNG would overwrite the input {clobbered}; choose another folder"
        )


def holes_for(image: np.ndarray, name: str, args) -> np.ndarray:
    if args.box:
        return preprocess.box_mask(args.box, image.shape, name)
    if args.mask:
        return preprocess.read_mask(args.mask, image.shape, name)
    if args.fill_value is not None:
        try:
            return image == preprocess.checked_fill_value(args.fill_value, "--fill-value")
        except ValueError as error:
            raise PipelineError(str(error)) from None
    return np.zeros(image.shape, bool)


def frames(files: list[Path], args) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per input file, its digits in MNIST's frame: (uint8 (k, 28, 28), bool (k, 28, 28)), k = 1 or 10."""
    result = []
    for path in files:
        image = preprocess.read_gray(path)
        holes = holes_for(image, str(path), args)
        cells = (
            preprocess.split_number(image, holes, PHONE_DIGITS, str(path))
            if args.phone
            else [preprocess.to_mnist(image, holes)]
        )
        result.append((np.stack([c[0] for c in cells]), np.stack([c[1] for c in cells])))
    return result


def load_reader(args):
    """A function (images, masks) -> the chain's output dict; imports TensorFlow/MLflow only now (seconds)."""
    if args.model:
        import mlflow

        from pipeline.common import tracking

        mlflow.set_tracking_uri(tracking.tracking_uri())
        try:
            model = mlflow.pyfunc.load_model(args.model)
        except mlflow.exceptions.MlflowException as exc:
            raise PipelineError(f"--model {args.model}: {exc.message} (store: {tracking.tracking_uri()})") from None
        from pipeline.serving.registry import chain_takes_mask

        if chain_takes_mask(model):
            return lambda images, masks: model.predict({"image": images, "mask": masks})
        if args.box or args.mask or args.fill_value is not None:
            raise PipelineError(
                f"--model {args.model} restores blind: it takes the image alone and would ignore --box, --mask "
                "or --fill-value; drop them, or use the project's own models, which keep the pixels outside a given hole"
            )
        return lambda images, masks: model.predict({"image": images})

    from pipeline.common import paths
    from pipeline.common.config import load_params

    project = args.project
    files = [project / paths.GENERATOR_MODEL, project / paths.CLASSIFIER_MODEL]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise PipelineError(
            f"{', '.join(missing)}: not found; run the pipeline (dvc repro) in {project.resolve()}, "
            "pass --project, or use a registered model with --model models:/digit-restore-mnist@champion"
        )
    params = load_params(project / "params.yaml")
    import keras

    from pipeline.serving.chain import restore_and_read
    from pipeline.training.models import is_blind, with_damage_threshold

    generator, classifier = (keras.models.load_model(f) for f in files)
    generator = with_damage_threshold(generator, params.evaluate.damage_threshold)

    def read(images, masks):
        if not is_blind(generator) and not masks.any():
            raise PipelineError(
                f"{files[0]} was trained with the hole as an input (gan.recipe given_hole) and cannot find damage "
                "itself; give --box, --mask or --fill-value, or train the default blind restorer"
            )
        return restore_and_read(generator, classifier, params.mask.fill, images, masks)

    return read


def write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise PipelineError(f"{path}: could not write the PNG")


def write_outputs(files: list[Path], inputs, output: dict, out: Path, show_damage: bool = False) -> list[list]:
    """One restored PNG per input (its digits side by side; with `show_damage` also the damage found) and
    predictions.csv; returns the CSV rows."""
    rows, start = [], 0
    for path, (cells, holes) in zip(files, inputs):
        part = slice(start, start + len(cells))
        start += len(cells)
        png = out / f"{path.stem}.png"
        write_png(png, np.hstack(list(np.asarray(output["restored"][part], dtype=np.uint8))))
        if show_damage:
            write_png(
                out / f"{path.stem}_damage.png", np.hstack(list(np.asarray(output["damage"][part], dtype=np.uint8)))
            )
        confidences = np.asarray(output["confidence"][part], dtype=np.float64)
        rows.append(
            [
                str(path),
                "".join(str(int(d)) for d in output["digit"][part]),
                f"{confidences.prod():.4f}",
                " ".join(f"{c:.4f}" for c in confidences),
                int(holes.sum()),
                str(png),
            ]
        )
    save_csv(out / CSV_NAME, ["file", "prediction", "confidence", "digit_confidences", "hole_pixels", "restored"], rows)
    return rows


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        exclude = {args.mask.resolve()} if args.mask else set()
        files = input_files(args.inputs, exclude)
        check_outputs(files, args.out)
        inputs = frames(files, args)
        read = load_reader(args)
        output = read(np.concatenate([i for i, _ in inputs]), np.concatenate([m for _, m in inputs]).astype(np.uint8))
        rows = write_outputs(files, inputs, output, args.out, args.show_damage)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(f"{row[0]}: {row[1]} (confidence {row[2]})")
    print(f"wrote {len(rows)} restored PNGs and {args.out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
