// A built-in analytic thorax phantom in HU, so the server and its demos work
// without any data files.
#pragma once

#include "volume/volume.h"

namespace drr {

// A 128×128×96 int16 HU volume at 2.5 mm isotropic spacing, centred on the
// world origin with a RAS affine oriented as the bundled LIDC chest CT
// (i toward patient right, j toward posterior, k toward superior): air
// around an elliptical body of soft tissue with a fat layer, two lungs, a
// heart, a spine with a spinal canal, a sternum and rib rings.
HostVolume MakeThoraxPhantom();

}  // namespace drr
