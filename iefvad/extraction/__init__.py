"""Videos to feature files: encoders and their weights, the recipe, the pipeline, the output layout
and the provenance recorded with the features."""
