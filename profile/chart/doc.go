// Package chart draws router profiles (package profile) as PNG images: a
// layers × experts heatmap of the share of each layer's selections that went
// to each expert, in viridis on a linear or log scale, and the per-layer
// popularity curves (how much of a layer's routing its n most selected
// experts cover). It embeds the Go fonts and imports golang.org/x/image, which
// is why it is a package of its own: a program that records or reads profiles
// does not link it. profile.WriteCSV writes the numbers behind both charts.
package chart
