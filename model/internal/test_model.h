// Test helpers shared by the model stage tests: the testdata configs and small micro-batches.
#ifndef MODEL_INTERNAL_TEST_MODEL_H_
#define MODEL_INTERNAL_TEST_MODEL_H_

#include <string>

#include "model/config.pb.h"
#include "model/model_stage.h"

namespace model::test_util {

// model/testdata/<name>.textproto, loaded and validated; EXPECTs success (the test's data must
// list the file).
ModelConfig TestConfig(const std::string& name);

// Two sequences of 4 tokens drawn from Rng(seed) in [0, 32) (the tiny vocabulary); the targets are
// the next tokens, the last of each sequence ignored.
MicroBatch TestBatch(int seed);

}  // namespace model::test_util

#endif  // MODEL_INTERNAL_TEST_MODEL_H_
