"""The training recipe's configuration (``configs/train.yaml`` and its overlays: ``finetune-*.yaml``,
``train-gpu.yaml``), checked as the pipeline's is."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from detector.config.sections import (
    Fraction,
    KeyProblem,
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
    Section,
    open_mapping,
)

SPLIT_KINDS = ("groups", "segments", "folders", "blocks")
DERIVED_SOURCES = ("composite", "simulator", "overlay", "hard_negative")  # written by the build, beside the real sets

Span = tuple[float, float]


PROVENANCE_KEYS = ("repository", "commit", "licence")  # a source's record: where it came from, not what it holds


class SourceSpec(Section):
    """One pothole set: its folder under the data root (or an absolute folder), how it is split and labelled, and
    where it came from (so that the set can be rebuilt)."""

    path: str
    split: Literal["groups", "segments", "folders", "blocks"]  # blocks: runs of file numbers (see block_size)
    outside_lane: Literal["keep", "grey"] = "keep"  # dnit: paint what is outside the annotated lane
    format: Literal["yolo", "voc", "gtsdb"] = "yolo"  # voc: Pascal VOC xml per image (RDD2022's own layout);
    # gtsdb: images beside one gt.txt of "<image>;x0;y0;x1;y1;<type>" rows (the GTSDB benchmark's layout)
    voc_classes: dict[str, str] = open_mapping(default_factory=dict)  # voc: annotation name -> class; others dropped
    block_size: Annotated[int, Field(gt=0, le=100_000)] = 100  # blocks: file number // block_size is a road group
    val_groups: list[str] | None = None  # these groups are the validation split (null: chosen by val_fraction)
    box_class: str | None = None  # gtsdb: the class every box becomes (any sign type: traffic_sign)
    repository: str | None = None  # where the files were fetched from (a git repository or a page)
    commit: str | None = None  # the commit (or version) fetched
    licence: str | None = None  # as stated by the source; credit it in the model card


class DataConfig(Section):
    root: str
    work_dir: str
    val_fraction: Fraction
    min_box_px: NonNegative
    holdout: str | None
    repeat: dict[str, PositiveInt] = open_mapping()  # source -> times each of its training images is listed
    sources: dict[str, SourceSpec] = open_mapping()

    @model_validator(mode="after")
    def _sources_named(self) -> DataConfig:
        if self.holdout is not None and self.holdout not in self.sources:
            raise KeyProblem("data.holdout", f"{self.holdout!r} is not a source ({', '.join(self.sources)})")
        listed = (*self.sources, *DERIVED_SOURCES)
        for name in self.repeat:
            if name not in listed:
                raise KeyProblem(f"data.repeat.{name}", f"not a source ({', '.join(listed)})")
        return self


class CompositeConfig(Section):
    """Synthetic fallen signs pasted onto real road images of the same split."""

    signs: str
    count: dict[str, NonNegativeInt] = open_mapping()
    backgrounds: dict[str, NonNegative] = open_mapping()
    road_band: dict[str, Span] = open_mapping()  # source -> [top, bottom] fraction of height
    signs_per_image: tuple[int, int]
    size_px: Span
    poses: dict[str, NonNegative] = open_mapping()
    knocked_deg: Span
    leaning_deg: Span
    flat_squash: Span
    pole_p: Fraction
    back_p: Fraction
    occlude_p: Fraction
    occlude_frac: Span
    blur_sigma: Span
    jpeg_quality: tuple[int, int]
    decoy_p: Fraction  # chance of one unlabelled decoy per composite: a sign's outline filled with road


class OverlayConfig(Section):
    """Dashcam stamps burned into copies of real images."""

    count: dict[str, NonNegativeInt] = open_mapping()  # split -> images
    backgrounds: dict[str, NonNegative] = open_mapping()  # source (composite included) -> share
    jpeg_quality: tuple[int, int]


class HardNegativeConfig(Section):
    model: str | None  # the model that mines (null: none mined)
    classes: list[str]  # classes no image of ``sources`` shows
    conf: Fraction  # a detection of those classes this sure, anywhere in the frame, makes an image a hard negative
    sources: list[str]  # the real sets mined (their training split)


class SimulatorFramesConfig(Section):
    """Frames of the drive simulator, with exact boxes from its geometry."""

    worlds: dict[str, list[int]] = open_mapping()  # split -> world seeds
    drive_seeds: list[int]
    duration_s: Positive
    fps: PositiveInt
    spacing_m: Positive
    range_m: Span  # hazards labelled at this distance ahead; farther ones are specks
    min_box_px: Span  # smaller boxes (width, height) are dropped
    min_visible: Fraction
    min_fill: Fraction
    roi_top: Fraction
    cover_spacing_m: Positive | None
    cover_range_m: Span
    standing_sign_spacing_m: Positive | None
    standing_sign_range_m: Span


class ModelConfig(Section):
    yaml: str
    pretrained: str | None
    init: str | None


class SessionConfig(Section):
    """How much of a run one invocation trains: the run stops resumably (``weights/last.pt`` keeps its optimizer)
    after this many epochs, or before an epoch that would end past this many hours; null: no limit."""

    epochs: Annotated[int, Field(gt=0, le=10_000)] | None
    hours: Annotated[float, Field(gt=0, le=720)] | None


class FreezeConfig(Section):
    layers: NonNegativeInt
    epochs: NonNegativeInt


class MotionBlurConfig(Section):
    p: Fraction
    max_px: NonNegativeInt


class TrainSection(Section):
    threads: PositiveInt
    device: str
    workers: NonNegativeInt
    val_every: NonNegativeInt  # 0: the last epoch only
    freeze: FreezeConfig
    motion_blur: MotionBlurConfig
    session: SessionConfig
    args: dict[str, Any] = open_mapping()  # passed to Ultralytics train() as is

    @field_validator("args", mode="before")
    @classmethod
    def _numbers_read_as_numbers(cls, args: Any) -> Any:
        # YAML reads 1e309 or nan as text; Ultralytics would read it as a number, past the finite check
        return {k: _number_or_text(v) for k, v in args.items()} if isinstance(args, dict) else args


def _number_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        return value


class ExportConfig(Section):
    onnx: bool
    imgsz: PositiveInt
    simplify: bool
    dynamic: bool


class TrainingConfig(Section):
    """The whole training recipe."""

    classes: list[str]
    seed: int
    output: str
    name: str
    data: DataConfig
    composite: CompositeConfig
    overlay: OverlayConfig
    hard_negatives: HardNegativeConfig
    simulator: SimulatorFramesConfig
    model: ModelConfig
    train: TrainSection
    export: ExportConfig

    @model_validator(mode="after")
    def _voc_classes_known(self) -> TrainingConfig:
        for name, spec in self.data.sources.items():
            for label, target in spec.voc_classes.items():
                if target not in self.classes:
                    raise KeyProblem(f"data.sources.{name}.voc_classes.{label}", f"{target!r} is not in classes")
            if spec.format == "voc" and not spec.voc_classes:
                raise KeyProblem(f"data.sources.{name}.voc_classes", "a voc source needs its class mapping")
            if spec.format == "gtsdb" and spec.box_class not in self.classes:
                raise KeyProblem(f"data.sources.{name}.box_class", f"{spec.box_class!r} is not in classes")
        return self
