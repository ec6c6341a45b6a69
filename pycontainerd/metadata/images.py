"""Images in the metadata database (containerd ``images.Store`` over LMDB).

An image is a name (any non-empty string: a reference such as
``docker.io/library/busybox:latest``), labels, and a *target* descriptor — the manifest or
index it points to. Records live at ``<ns>\\0image\\0<name>``; publishing ``/images/*``
events happens after the transaction commits. Deleting an image only drops the record;
the content it pointed to goes when garbage collection finds it unreferenced.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .. import digest as digest_mod, filters, labels as labels_mod, namespaces
from ..api.events import image_pb2
from ..descriptor import Descriptor
from ..errdefs import AlreadyExists, InvalidArgument, NotFound, quote
from ..events.exchange import Exchange
from ..records.images import Image
from .db import MetadataDB, Txn
from .keys import IMAGES, SEP, image_key, key_prefix
from .namespaces import ensure

TOPIC_CREATE = "/images/create"
TOPIC_UPDATE = "/images/update"
TOPIC_DELETE = "/images/delete"


def _validate(image: Image) -> None:
    if not image.name:
        raise InvalidArgument("image name must not be empty")
    if SEP.decode() in image.name:
        raise InvalidArgument(f"image name {quote(image.name)} contains a NUL byte")
    labels_mod.validate_all(image.labels)
    t = image.target
    try:
        digest_mod.validate(t.digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"Target.Digest {quote(t.digest)} invalid: {exc.context}") from exc
    if t.size <= 0:
        raise InvalidArgument("Target.Size must be greater than zero")
    if not t.media_type:
        raise InvalidArgument("Target.MediaType must be set")


def _record(image: Image) -> dict:
    return {
        "labels": dict(image.labels),
        "target": image.target.to_json(),
        "created_at": image.created_at,
        "updated_at": image.updated_at,
    }


def _image(name: str, record: Mapping) -> Image:
    return Image(
        name=name,
        target=Descriptor.from_json(record["target"]),
        labels=dict(record["labels"]),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def adaptor(image: Image) -> filters.Adaptor:
    """containerd's image filter fields: ``name``, ``target.digest``, ``target.mediatype``,
    ``labels.<key>``, ``annotations.<key>`` (of the target)."""

    def field_of(path):
        head = path[0]
        if head == "name" and len(path) == 1:
            return image.name or None
        if head == "target" and len(path) == 2:
            return {"digest": image.target.digest, "mediatype": image.target.media_type}.get(path[1]) or None
        if head == "labels":
            return filters.adapt_labels(path, image.labels)
        if head == "annotations":
            return filters.adapt_labels(path, image.target.annotations)
        return None

    return field_of


class ImageStore:
    """Namespaced image records; the namespace comes from the request context."""

    def __init__(self, db: MetadataDB, exchange: Exchange | None = None) -> None:
        self.db = db
        self.exchange = exchange

    def get(self, name: str) -> Image:
        """Raises :class:`NotFound`."""
        ns = namespaces.required()
        record = self.db.view(lambda txn: txn.get("objects", image_key(ns, name)))
        if record is None:
            raise NotFound(f"image {quote(name)}")
        return _image(name, record)

    def list(self, filter_texts: list[str] | tuple[str, ...] = ()) -> list[Image]:
        """Images matching any of the filters (all when none), sorted by name.

        Raises :class:`InvalidArgument` for a bad filter."""
        ns = namespaces.required()
        match = filters.parse_all(filter_texts)
        prefix = key_prefix(ns, IMAGES)
        rows = self.db.view(lambda txn: list(txn.scan("objects", prefix)))
        images = [_image(k[len(prefix):].decode(), v) for k, v in rows]
        return [i for i in images if match.match(adaptor(i))]

    async def create(self, image: Image) -> Image:
        """Create a record. Raises :class:`InvalidArgument`, :class:`AlreadyExists`."""
        ns = namespaces.required()
        _validate(image)
        now = time.time_ns()
        image = replace(image, created_at=now, updated_at=now)

        def txn_fn(txn: Txn) -> None:
            ensure(txn, ns)
            if not txn.put("objects", image_key(ns, image.name), _record(image), overwrite=False):
                raise AlreadyExists(f"image {quote(image.name)}")

        await self.db.update(txn_fn)
        self._publish(TOPIC_CREATE, image)
        return image

    async def update(self, image: Image, paths: list[str] | tuple[str, ...] = ()) -> Image:
        """Update by field paths as containerd: ``labels``, ``labels.<k>``, ``target``,
        ``annotations``, ``annotations.<k>``; no paths replaces labels and target.

        Raises :class:`InvalidArgument` (bad path or result), :class:`NotFound`.
        """
        ns = namespaces.required()
        if not image.name:
            raise InvalidArgument("image name is required for update")

        def txn_fn(txn: Txn) -> Image:
            record = txn.get("objects", image_key(ns, image.name))
            if record is None:
                raise NotFound(f"image {quote(image.name)}")
            current = _image(image.name, record)
            updated = _apply_paths(current, image, list(paths))
            updated = replace(updated, created_at=current.created_at, updated_at=time.time_ns())
            _validate(updated)
            txn.put("objects", image_key(ns, image.name), _record(updated))
            return updated

        updated = await self.db.update(txn_fn)
        self._publish(TOPIC_UPDATE, updated)
        return updated

    async def put_all(self, images: Sequence[Image], paths: Sequence[str] = ("target", "labels")) -> list[Image]:
        """Create each image, or update the ``paths`` of the record of its name that exists
        (:meth:`create` or :meth:`update` each), in one transaction: a pull records an
        image under its reference, repo digest and id with one commit. Publishes
        ``/images/create`` or ``/images/update`` for each. Raises :class:`InvalidArgument`
        (nothing written)."""
        ns = namespaces.required()
        now = time.time_ns()
        fresh = [replace(image, created_at=now, updated_at=now) for image in images]
        for image in fresh:
            _validate(image)

        def txn_fn(txn: Txn) -> list[tuple[str, Image]]:
            ensure(txn, ns)
            out = []
            for image in fresh:
                key = image_key(ns, image.name)
                record = txn.get("objects", key)
                if record is None:
                    txn.put("objects", key, _record(image))
                    out.append((TOPIC_CREATE, image))
                    continue
                current = _image(image.name, record)
                updated = replace(_apply_paths(current, image, list(paths)), created_at=current.created_at,
                                  updated_at=now)
                _validate(updated)
                txn.put("objects", key, _record(updated))
                out.append((TOPIC_UPDATE, updated))
            return out

        written = await self.db.update(txn_fn)
        for topic, image in written:
            self._publish(topic, image)
        return [image for _, image in written]

    async def delete(self, name: str) -> None:
        """Delete the record. Raises :class:`NotFound`."""
        if not await self.delete_all([name]):
            raise NotFound(f"image {quote(name)}")

    async def delete_all(self, names: Sequence[str]) -> list[str]:
        """Delete the records of ``names`` that exist, in one transaction (one commit for
        an image's every name, where a delete each was a commit each); publish
        ``/images/delete`` for each. Returns the names deleted."""
        ns = namespaces.required()
        wanted = list(dict.fromkeys(names))
        deleted = await self.db.update(lambda txn: [n for n in wanted if txn.delete("objects", image_key(ns, n))])
        if self.exchange is not None:
            for name in deleted:
                self.exchange.publish(TOPIC_DELETE, image_pb2.ImageDelete(name=name))
        return deleted

    def _publish(self, topic: str, image: Image) -> None:
        if self.exchange is None:
            return
        cls = image_pb2.ImageCreate if topic == TOPIC_CREATE else image_pb2.ImageUpdate
        self.exchange.publish(topic, cls(name=image.name, labels=dict(image.labels)))


def _apply_paths(current: Image, incoming: Image, paths: list[str]) -> Image:
    if not paths:
        return replace(incoming, target=incoming.target)
    labels = dict(current.labels)
    target = current.target
    annotations = dict(target.annotations)
    for path in paths:
        if path.startswith("labels."):
            k = path[len("labels."):]
            labels[k] = incoming.labels.get(k, "")
        elif path.startswith("annotations."):
            k = path[len("annotations."):]
            annotations[k] = incoming.target.annotations.get(k, "")
        elif path == "labels":
            labels = dict(incoming.labels)
        elif path == "target":
            target = incoming.target
            annotations = dict(target.annotations)
        elif path == "annotations":
            annotations = dict(incoming.target.annotations)
        else:
            raise InvalidArgument(f"cannot update {quote(path)} field on image {quote(current.name)}")
    labels = {k: v for k, v in labels.items() if v}
    annotations = {k: v for k, v in annotations.items() if v}
    return replace(current, labels=labels, target=replace(target, annotations=annotations))
