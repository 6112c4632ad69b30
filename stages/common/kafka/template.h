// The Kafka output's topic and key templates are the stages' common FieldTemplate; this name
// stays until stages/outputs/kafka includes "field_template.h" itself.
#pragma once

#include "field_template.h"

namespace hbf::kafka {
using hbf::FieldTemplate;
}  // namespace hbf::kafka
