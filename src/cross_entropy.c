/* Cross-entropy with integer targets, forward and fused backward (see softmax.h).
 * The body is src/cross_entropy_body.h, instantiated for float and double. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "softmax.h"
#include "softmax_exp.h"
#include "softmax_common.h"

#define T float
#define SFX(n) n##_f32
#define EXPNEG dlk_expneg_f32
#define LANES 16
#include "cross_entropy_body.h"
#undef T
#undef SFX
#undef EXPNEG
#undef LANES

#define T double
#define SFX(n) n##_f64
#define EXPNEG dlk_expneg_f64
#define LANES 8
#include "cross_entropy_body.h"
