package classifier

import "math"

// The optimiser's results are meant to be bit-identical on every machine of
// one architecture. math.Exp is not: on amd64 it runs assembly that takes an
// FMA path only on CPUs with FMA, so two x86 machines can disagree in the
// last bit and the fits drift apart. exp below is the portable algorithm
// from the Go standard library (math/exp.go, BSD licence, derived from
// FreeBSD's e_exp.c), which math.Exp itself uses on machines without
// assembly. math.Log1p and math.Ldexp are pure Go on amd64 already.

// exp returns e**x computed without CPU-dependent instructions.
func exp(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00

		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28) // 2**-28

		p1 = 1.66666666666666657415e-01
		p2 = -2.77777777770155933842e-03
		p3 = 6.61375632143793436117e-05
		p4 = -1.65339022054652515390e-06
		p5 = 4.13813679705723846039e-08
	)
	switch {
	case math.IsNaN(x):
		return x
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(log2e*x - 0.5)
	case x > 0:
		k = int(log2e*x + 0.5)
	}
	// Explicit float64 conversions forbid fused multiply-adds, which the Go
	// compiler would otherwise emit on arm64 and friends.
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(k) * ln2Lo
	r := hi - lo
	t := r * r
	c := r - float64(t*(p1+float64(t*(p2+float64(t*(p3+float64(t*(p4+float64(t*p5)))))))))
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return math.Ldexp(y, k)
}

// sigmoid returns 1/(1+e^-z) without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + exp(-z))
	}
	e := exp(z)
	return e / (1 + e)
}

// logLoss1 returns the log loss of logit z against label y in [0,1]:
// log(1+e^z) - y*z, computed stably for large |z|.
func logLoss1(z, y float64) float64 {
	// log(1+e^z) = max(z,0) + log1p(e^-|z|)
	return math.Max(z, 0) + math.Log1p(exp(-math.Abs(z))) - float64(y*z)
}

// Sigmoid returns the logistic function 1/(1+e^-z), the probability a
// logit stands for.
func Sigmoid(z float64) float64 { return sigmoid(z) }
