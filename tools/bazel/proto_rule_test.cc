// cc_proto runs the system protoc: the generated C++ parses and prints text format, and imports
// of protobuf's well-known types resolve.
#include <string>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tools/bazel/proto_rule_test.pb.h"

namespace {

TEST(CcProto, GeneratedCodeRoundTripsTextFormat) {
  const std::string text = R"pb(
    hidden: 64
    layers {
      name: "moe"
      experts: [ 0, 3, 5 ]
    }
    route_scale { value: 2.5 }
  )pb";
  dsmoe::test::Net net;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &net));
  EXPECT_EQ(net.hidden(), 64);
  ASSERT_EQ(net.layers_size(), 1);
  EXPECT_EQ(net.layers(0).experts(2), 5);
  EXPECT_FLOAT_EQ(net.route_scale().value(), 2.5f);

  std::string printed;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(net, &printed));
  dsmoe::test::Net again;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(printed, &again));
  EXPECT_EQ(again.SerializeAsString(), net.SerializeAsString());
}

TEST(CcProto, RejectsMalformedText) {
  dsmoe::test::Net net;
  EXPECT_FALSE(google::protobuf::TextFormat::ParseFromString("hidden: \"x\"", &net));
}

}  // namespace
