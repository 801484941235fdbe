"""Training: one engine for the teacher and every method (`engine`), the cached teacher
(`teacher`), the teacher's outputs during training (`teacher_outputs`) and the GPU speed paths
(`device`)."""
