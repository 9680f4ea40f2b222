// Checks that a schedule is a correct training step that can run.
#ifndef DUALPIPE_VALIDATOR_H_
#define DUALPIPE_VALIDATOR_H_

#include "absl/status/status.h"
#include "dualpipe/schedule.h"

namespace dualpipe {

// Returns OK if `schedule` is legal:
//  - structure: one op list per rank; every route's hops name existing ranks, no hop appears twice,
//    each path label belongs to one route; every op names a path hosted on its rank and a
//    micro-batch of that route;
//  - completeness: every stage of every micro-batch has exactly one F and either exactly one B, or
//    exactly one I and one W; the F comes before the B or I on its rank (an overlapped pair cannot
//    be the F and B of the same stage and micro-batch), and each I before its W; W's follow their
//    I's in FIFO order on each rank;
//  - streams: the values one rank sends another (activations or gradients of one route, see
//    DeriveTransfers) are consumed in the order they are produced, so each such stream can be a
//    FIFO queue, as in the reference implementation's per-phase queues;
//  - liveness: with the sends and receives the data dependencies imply (activations to the next
//    stage, input gradients to the previous one; sends asynchronous), every rank runs to the end,
//    i.e. no rank waits for a value that can only be produced after that wait.
// Otherwise InvalidArgument (structure, completeness, order, streams) or FailedPrecondition
// (deadlock), with a message naming the rank, op and micro-batch at fault. Thread-safe.
absl::Status ValidateSchedule(const Schedule& schedule);

}  // namespace dualpipe

#endif  // DUALPIPE_VALIDATOR_H_
