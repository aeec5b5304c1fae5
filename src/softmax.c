/* Softmax and log-softmax over any axis, forward and backward (see softmax.h).
 * The body is src/softmax_body.h, instantiated for float and double. */
#include <math.h>
#include <stdlib.h>

#include "softmax.h"
#include "softmax_exp.h"
#include "softmax_common.h"

#define T float
#define SFX(n) n##_f32
#define EXPNEG dlk_expneg_f32
#define EXPFULL dlk_exp_f32
#define LANES 16
#include "softmax_body.h"
#undef T
#undef SFX
#undef EXPNEG
#undef EXPFULL
#undef LANES

#define T double
#define SFX(n) n##_f64
#define EXPNEG dlk_expneg_f64
#define EXPFULL dlk_exp_f64
#define LANES 8
#include "softmax_body.h"
