#include "peinit/record/measurement.h"

namespace peinit {

Result<MeasurementRecord> MeasurementRecord::FromJson(std::string_view text,
                                                      const std::string& file) {
    auto r = PEINIT_TRY(ReadRecord<MeasurementRecord>(text, file, kVersion));
    if (r.state != kMeasured && r.state != kNotMeasured && r.state != kFailed) {
        return Err(file +
                   ": \"state\" must be \"measured\", \"not-measured\" or \"failed\", not \"" +
                   r.state + "\"");
    }
    return r;
}

}  // namespace peinit
