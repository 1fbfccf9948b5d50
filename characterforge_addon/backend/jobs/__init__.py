"""The job kinds: each turns a validated spec into pictures on the engine (posed character, sheet,
shot, background, expression, training, ...) and scores them. May import engine, families, models,
tiny (the tiny profiles' pose detector), core; never serving."""
