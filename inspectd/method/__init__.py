"""The seed poster's zero-shot method as plain array code: no I/O, no model loading.

Poster bullet -> function:

Foreground extraction
- "Dichotomous Image Segmentation produces foreground mask"
    -> foreground.binarize (IS-Net probability -> clean mask), foreground.split_components (the objects)
- "SAM annotations give estimate of object complexity"
    -> complexity.complexity_from_masks (per component, cached per camera), complexity.complexity_for
- "Tile foreground components ... based on component size, aspect ratio and SAM complexity"
    -> tiling.plan_tiles (per component: size bound, aspect ratio, complexity; TilingParams),
       tiling.limit_frame_tiles (the frame's tile budget)

Predict on foreground component tiles
- "Apply CLIPSeg to each image tile with a variety of generic anomaly descriptions"
    -> done by the model; the descriptions are pipeline.anomaly_prompts in the config
- "Harmonic average across segmentations to get pixel-wise prediction per tile"
    -> fusion.harmonic_mean
- "Use WinCLIP prompt ensembling for tile-level anomaly score"
    -> prompts.compositional_prompts, prompts.class_embeddings, prompts.anomaly_probability
       (prompts.prompt_key names the text-embedding cache entry)

Final prediction
- "Average tile-level scores for each foreground component" -> fusion.component_scores
- "Weight anomaly localisations by foreground component anomaly score" and
  "Combine tiles to produce anomaly map over image" -> fusion.component_labels, fusion.stitch; each part's
  map is kept inside its filled outline (foreground.filled_outline), so defects that remove material count
- The line's pass/fail -> verdict.image_score, verdict.defect_regions, verdict.decide

Beyond the poster: patchcore (reference mode, a few good parts per camera: coreset, normalisation, tiles at a
fixed scale and their stitching; feature extraction and nearest-neighbour search run in the pipeline).
"""
