"""From a drawing or an uploaded picture to the model's 28x28 input (contracts.md section 5).

- `mnist`: the algorithm the browser shares (static-web/js/preprocess.js): ink from RGBA,
  cropped, fitted in a 20 px box, centred by its centre of mass.
- `pictures`: a PNG or JPEG body decoded safely (bounded in time and memory) down to ink, and
  `preprocess_image_bytes`, which hands that ink to the algorithm.
"""
