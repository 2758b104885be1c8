"""The model card: a short markdown page that travels beside the ONNX file."""

from __future__ import annotations

from conversion.network import NETWORKS
from conversion.train import RECIPES, TrainingSettings

# The bundled model's targets (the foundation issue); the card says whether each is met.
TARGET_ACCURACY = 0.995
TARGET_FILE_SIZE_BYTES = 2 * 1024 * 1024
TARGET_MEDIAN_LATENCY_MS = 0.2
# Knowing what is not a digit (issue #25): held-out non-digits flagged, MNIST test digits
# flagged (false alarms), accuracy on the test digits kept, and the site's pen-drawn digits read
# right (a flagged one counting as wrong).
TARGET_NEGATIVES_FLAGGED = 0.90
TARGET_TEST_FLAGGED = 0.01
TARGET_KEPT_ACCURACY = 0.996
TARGET_PEN_ACCURACY = 0.985


def render_model_card(report: dict) -> str:
    metadata, evaluation, training = report["metadata"], report["evaluation"], report["training"]
    settings = TrainingSettings(**training["settings"])
    recipe = RECIPES[settings.recipe]
    augmentation = f"on: {recipe.augmentation.describe()}" if settings.augment else "off"
    latency = evaluation["latency"]
    per_class = "\n".join(
        f"| {digit} | {figures['precision']:.4f} | {figures['recall']:.4f} | {figures['support']} |"
        for digit, figures in evaluation["per_class"].items()
    )
    targets = [
        (
            "test accuracy",
            f"{evaluation['test_accuracy']:.2%}",
            f">= {TARGET_ACCURACY:.1%}",
            evaluation["test_accuracy"] >= TARGET_ACCURACY,
        ),
        (
            "ONNX file size",
            f"{evaluation['file_size_bytes'] / 1e6:.2f} MB",
            "<= 2 MiB",
            evaluation["file_size_bytes"] <= TARGET_FILE_SIZE_BYTES,
        ),
        (
            "median single-image latency",
            f"{latency['median_ms']:.3f} ms",
            f"<= {TARGET_MEDIAN_LATENCY_MS} ms",
            latency["median_ms"] <= TARGET_MEDIAN_LATENCY_MS,
        ),
    ]
    not_digit = evaluation.get("not_digit") or {}
    if not_digit.get("rule"):
        targets += _not_digit_targets(not_digit)
    # Reports made before feedback was recorded carry MNIST's sha256 in the metadata alone.
    mnist_sha256 = report["data"].get("sha256", metadata["training_data_sha256"])
    target_rows = "\n".join(
        f"| {name} | {value} | {target} | {'met' if met else 'NOT met'} |"
        for name, value, target, met in targets
    )
    return f"""# Model card: {metadata["version"]}

A convolutional network that reads one handwritten digit (0-9) from a 28x28 greyscale image.

## Interface

- Input `pixels`: float32 `[N, 28, 28, 1]`, raw ink values 0..255, MNIST polarity (background 0,
  ink 255). The scaling to 0..1 is inside the graph.
- Output `probabilities`: float32 `[N, 10]`, softmax; row `i` column `d` is the probability that
  image `i` shows digit `d`{_interface_not_digit(metadata, not_digit)}
- ONNX opset {report["conversion"]["opset"]}; metadata: {", ".join(sorted(metadata))}.

## Data

MNIST ({report["data"]["source"]}, sha256 `{mnist_sha256}`):
{training["fit_images"]} training images, {training["validation_images"]} held-out training images
for choosing the epoch, and the {evaluation["test_images"]} test images used once, for the figures
below.{_additions(training)}

{_feedback(report)}

## Training

Built with {metadata["framework"]}.

Recipe `{settings.recipe}` (docs/model_frontier.md). Seed {settings.seed}; {settings.epochs}
epochs ({_chosen_epoch(training)}); batch {settings.batch_size};
{recipe.describe(settings.learning_rate)}; augmentation {augmentation}.
Architecture: {NETWORKS[recipe.network].describe()}.

## Figures (MNIST test set, onnxruntime)

| figure | value | target | |
| --- | --- | --- | --- |
{target_rows}

Errors: {evaluation["errors"]} of {evaluation["test_images"]}. Latency: one image, one thread,
median of {latency["runs"]} runs (p99 {latency["p99_ms"]:.3f} ms), on the machine that built it.
The ONNX model agrees with Keras on the argmax of all {report["verification"]["images"]} test
images;
largest probability difference {report["verification"]["max_probability_difference"]:.1e}.

| digit | precision | recall | test images |
| --- | --- | --- | --- |
{per_class}

The confusion matrix is in `confusion_matrix.png` and in `report.json`.

{_not_digit_section(not_digit)}

## Intended use and limits

For recognising a single, roughly centred handwritten digit, prepared the way MNIST was made
(see the site's preprocessing): ink cropped, scaled to 20 px on its longer side, centred by its
centre of mass in a 28x28 field. {_limits(not_digit)} It was trained on
American Census Bureau employees' and high-school students' writing from the 1990s; other scripts
and writing styles (a crossed 7, a hooked 1) may be recognised less well. It is not for reading
multi-digit numbers, forms, or anything on which a decision about a person depends.
"""


def _feedback(report: dict) -> str:
    """The paragraph on people's corrections (conversion/feedback.py)."""
    feedback = report.get("feedback") or {}
    if not feedback.get("source"):
        return "Corrections sent from the site (feedback): none used."
    dropped = (
        f"Of {feedback['read']} read, {feedback['malformed']} malformed, "
        f"{feedback['duplicates']} duplicates and {feedback['ambiguous']} ambiguous (the same "
        f"pixels with different labels) were dropped"
    )
    heading = f"Corrections sent from the site (feedback, {feedback['source']})"
    if not feedback["used"]:
        return f"{heading}: none usable. {dropped}."
    share = f"{feedback['held_out_fraction']:.0%}"
    lines = [
        f"{heading}: {feedback['used']} used. {dropped}. {feedback['training']} were trained "
        f"on, each {feedback['repeat']} times an epoch ({feedback['training_copies']} images "
        "beside MNIST's); "
        f"{feedback['held_out']} (about {share}, chosen by item id) were held out"
        + (
            f"; {feedback['over_share']} more were left out, past the share of MNIST that "
            f"corrections may take (a random sample was kept, seed {feedback.get('sample_seed')})."
            if feedback.get("over_share")
            else "."
        ),
    ]
    if feedback.get("held_out_accuracy") is not None:
        measured = (
            f"On the held-out corrections this model is right on {feedback['held_out_correct']} "
            f"of {feedback['held_out']} ({feedback['held_out_accuracy']:.1%})"
        )
        bundled = feedback.get("bundled_model")
        if bundled:
            measured += (
                f"; the bundled model ({bundled['version']}) on {bundled['held_out_correct']} "
                f"({bundled['held_out_accuracy']:.1%})"
            )
        lines.append(measured + ".")
    covers = (
        f"MNIST and the feedback items trained on (their ids' digest "
        f"`{feedback['training_sha256']}`)"
        if feedback["training"]
        else "MNIST alone: no item was trained on"
    )
    lines.append(
        f"The training data's sha256 `{report['metadata']['training_data_sha256']}` covers "
        f"{covers}. Corrections are not reviewed by anyone before training: a wrong or hostile "
        "one is learnt as it is."
    )
    return "\n".join(lines)


def _chosen_epoch(training: dict) -> str:
    accuracy = training["best_validation_accuracy"]
    if accuracy is None:
        return f"all {training['fit_images']:,} training images, the last epoch shipped"
    return f"best: epoch {training['best_epoch']}, validation accuracy {accuracy:.4f}"


def _interface_not_digit(metadata: dict, not_digit: dict) -> str:
    if not not_digit.get("rule"):
        return "."
    return (
        " (the closest digit).\n- Output `not_digit`: float32 `[N]`, the probability that the "
        "image is not a digit at all.\n- Metadata `is_digit_rule`: "
        f"`{metadata.get('is_digit_rule', not_digit['rule'])}`: an image is a digit when this "
        'holds, else the answer is "not a digit".'
    )


def _additions(training: dict) -> str:
    additions = training.get("additions") or {}
    if not additions.get("negatives"):
        return ""
    return (
        f"\nBeside them: {additions['negatives']:,} generated drawings that are not digits, "
        "trained on as an eleventh class (conversion/negatives.py's training generator: letters "
        "and symbols from the DejaVu and STIX fonts, scribbles, polygons, smileys, hatching, "
        f"zigzags, loops and noise), and {additions['pen_digits']:,} MNIST training digits "
        "redrawn with the site's pen, as digits."
    )


# The targets for telling digits from the rest: the figure in report.json, how it is
# shown, the target, and whether the figure must be at most (True) or at least (False) it.
NOT_DIGIT_TARGETS = (
    (
        "MNIST test digits flagged as not a digit",
        "test_flagged_share",
        ".2%",
        TARGET_TEST_FLAGGED,
        True,
    ),
    ("accuracy on the test digits kept", "kept_accuracy", ".2%", TARGET_KEPT_ACCURACY, False),
    (
        "held-out non-digits flagged",
        "held_out_flagged_share",
        ".1%",
        TARGET_NEGATIVES_FLAGGED,
        False,
    ),
    (
        "pen-drawn test digits read right (flagged = wrong)",
        "pen_accuracy",
        ".2%",
        TARGET_PEN_ACCURACY,
        False,
    ),
)


def _not_digit_targets(not_digit: dict) -> list[tuple[str, str, str, bool]]:
    """The rows of the targets whose figure the report has."""
    return [
        (
            label,
            format(not_digit[key], shown),
            f"{'<=' if at_most else '>='} {target:.1%}",
            not_digit[key] <= target if at_most else not_digit[key] >= target,
        )
        for label, key, shown, target, at_most in NOT_DIGIT_TARGETS
        if key in not_digit
    ]


def _not_digit_section(not_digit: dict) -> str:
    if not not_digit:
        return ""
    lines = ["## Not a digit", ""]
    if not_digit.get("rule"):
        lines.append(
            f"The model flags an image as not a digit unless `{not_digit['rule']}`. On "
            f"{not_digit.get('held_out_negatives', 0):,} held-out drawings that are not digits "
            "(conversion/negatives.py's held-out generator: the Computer Modern fonts and shape "
            "families training never saw: stars, hearts, arrows, spirals, suns, houses, grids, "
            "square sad faces, specks) it flags "
            f"{not_digit.get('held_out_flagged_share', 0):.1%}; of the MNIST test digits, "
            f"{not_digit['test_digits_flagged']} ({not_digit['test_flagged_share']:.2%}), and it "
            f"reads {not_digit['kept_accuracy']:.2%} of the others right."
        )
    else:
        lines.append(
            "The model declares no rule for what is not a digit: it answers a digit for everything."
        )
    calibration = (
        f"Calibration (expected calibration error of the top digit's probability, "
        f"{not_digit['calibration_bins']} bins): {not_digit['test_ece']:.4f} on the MNIST test "
        "digits"
    )
    if "pen_ece" in not_digit:
        calibration += (
            f", {not_digit['pen_ece']:.4f} on {not_digit['pen_digits']:,} MNIST test digits "
            "redrawn with the site's pen (conversion/pen.py), of which "
            f"{not_digit['pen_flagged_share']:.2%} are flagged and {not_digit['pen_accuracy']:.2%}"
            " read right (a flagged one counted as wrong)"
        )
    lines += ["", calibration + "."]
    return "\n".join(lines)


def _limits(not_digit: dict) -> str:
    if not not_digit.get("rule"):
        return (
            "It always answers one of the ten digits, even for a letter, a scribble or a blank "
            'image: use the confidence, and treat low values as "not sure".'
        )
    return (
        "It also says when a drawing is not a digit (its `not_digit` output and rule), having "
        "learnt that from generated letters, symbols, shapes, scribbles and noise: drawings "
        "unlike all of those (a word, a digit with a letter beside it, a drawing of a digit "
        "crossed out) may still be read as the closest digit, and an unusual digit may be "
        "flagged."
    )
