"""Records cross process boundaries (Ray pickles them): they must arrive as they left."""

from __future__ import annotations

import pickle

import ray.cloudpickle

from storage.records import (
    AppendBatch,
    DeadLetter,
    EventRecord,
    MessageRecord,
    SnapshotRecord,
    WorkflowRow,
)


def _full_batch() -> AppendBatch:
    return AppendBatch(
        stream_id="product-agent-0",
        epoch=3,
        events=tuple(
            EventRecord(
                stream_id="product-agent-0",
                seq=s,
                event_id=f"e{s}",
                type="product_validated",
                workflow_id="r:w",
                payload='{"kind": "product_validated"}',
            )
            for s in (7, 8)
        ),
        send=(
            MessageRecord(
                message_id="m1",
                recipient="marketing-agent-0",
                sender="product-agent-0",
                type="create_campaign",
                workflow_id="r:w",
                body="{}",
            ),
        ),
        mark_processed=("m0",),
        workflows=(
            WorkflowRow(workflow_id="r:w", run_id="r", status="running", current_step="handoff"),
        ),
        dead_letters=(DeadLetter(message_id="m9", recipient="x", reason="unknown", body="?"),),
        snapshot=SnapshotRecord(stream_id="product-agent-0", seq=8, state='{"workflows": []}'),
    )


def test_a_batch_with_every_kind_of_record_survives_pickling() -> None:
    batch = _full_batch()
    assert pickle.loads(ray.cloudpickle.dumps(batch)) == batch  # type: ignore[no-untyped-call]
    assert pickle.loads(pickle.dumps(batch, protocol=5)) == batch


def test_an_empty_batch_survives_pickling() -> None:
    batch = AppendBatch(stream_id="coordinator", epoch=1)
    assert pickle.loads(pickle.dumps(batch)) == batch
