//! Text, JSON and HTML for the verdict (skeleton).
