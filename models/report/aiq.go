package report

import (
	"math"
	"slices"
)

// Point is an (x, y) pair of a tradeoff curve.
type Point struct{ X, Y float64 }

// AIQ is RouterBench's average improvement in quality (Hu et al. 2024): the
// area under the non-decreasing upper convex hull of quality (y) against
// cost (x), divided by the cost range. Beyond the best quality the hull
// stays flat, since paying more never has to lower quality. Points with a
// NaN are ignored; with a single cost it is the best quality; NaN when
// there are no points.
func AIQ(pts []Point) float64 {
	hull := NonDecreasingHull(pts)
	if len(hull) == 0 {
		return math.NaN()
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		if math.IsNaN(p.X) || math.IsNaN(p.Y) {
			continue
		}
		lo, hi = math.Min(lo, p.X), math.Max(hi, p.X)
	}
	if hi == lo {
		return hull[len(hull)-1].Y
	}
	area := 0.0
	for i := 1; i < len(hull); i++ {
		area += (hull[i].X - hull[i-1].X) * (hull[i].Y + hull[i-1].Y) / 2
	}
	// Flat from the best point to the highest cost.
	last := hull[len(hull)-1]
	area += (hi - last.X) * last.Y
	return area / (hi - lo)
}

// NonDecreasingHull is the upper convex hull of pts from the cheapest point
// to the best one: every mix of two operating points (route a share of
// requests by one policy, the rest by the other) lies under it.
func NonDecreasingHull(pts []Point) []Point {
	s := make([]Point, 0, len(pts))
	for _, p := range pts {
		if !math.IsNaN(p.X) && !math.IsNaN(p.Y) {
			s = append(s, p)
		}
	}
	if len(s) == 0 {
		return nil
	}
	slices.SortFunc(s, func(a, b Point) int {
		if a.X != b.X {
			return cmpFloat(a.X, b.X)
		}
		return cmpFloat(b.Y, a.Y) // best first at equal cost
	})
	var hull []Point
	for _, p := range s {
		if len(hull) > 0 && p.X == hull[len(hull)-1].X {
			continue // a worse point at the same cost
		}
		// Pop while the last turn is not a right turn (upper hull).
		for len(hull) >= 2 {
			a, b := hull[len(hull)-2], hull[len(hull)-1]
			if (b.X-a.X)*(p.Y-a.Y)-(b.Y-a.Y)*(p.X-a.X) >= 0 {
				hull = hull[:len(hull)-1]
				continue
			}
			break
		}
		hull = append(hull, p)
	}
	// Cut at the best quality: after it the upper hull descends.
	best := 0
	for i, p := range hull {
		if p.Y > hull[best].Y {
			best = i
		}
	}
	return hull[:best+1]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ParetoFront returns the indices of the points no other point beats on
// both lower x and higher y, ordered by x: the operating points worth
// picking when x is a cost (money or latency) and y is quality.
func ParetoFront(pts []Point) []int {
	idx := make([]int, 0, len(pts))
	for i, p := range pts {
		if !math.IsNaN(p.X) && !math.IsNaN(p.Y) {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if pts[a].X != pts[b].X {
			return cmpFloat(pts[a].X, pts[b].X)
		}
		return cmpFloat(pts[b].Y, pts[a].Y)
	})
	var front []int
	bestY := math.Inf(-1)
	for _, i := range idx {
		if pts[i].Y > bestY {
			front = append(front, i)
			bestY = pts[i].Y
		}
	}
	return front
}
