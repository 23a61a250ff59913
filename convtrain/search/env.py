"""What a sweep tells each trial process it starts: where its study is, and which trial it is."""

ENV_STORAGE, ENV_STUDY, ENV_TRIAL = "CONVTRAIN_STUDY_STORAGE", "CONVTRAIN_STUDY", "CONVTRAIN_TRIAL"
