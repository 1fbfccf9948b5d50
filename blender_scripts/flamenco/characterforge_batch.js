// CharacterForge batch as a Flamenco job type: the frames of a CharacterForge batch (batch.toml:
// cameras, seeds, the shot's settings, the backends) split into chunks, each chunk one task that
// runs `blender -b FILE --python blender_scripts/batch.py -- --job BATCH --frames A-B` on a worker.
// Each chunk keeps its own manifest with what made each unit (its fingerprint), so a task run
// again keeps what it finished while nothing that made it changed, and redoes the units whose
// prompt, settings, profile, models or scene did change (saying which in its log); with
// "Keep changed" on, it keeps those too and lists them.
// An animated shot (batch.toml kind = "animation") chunks by segment instead: `segment_frames` > 0
// makes one task per segment of the video model (its first frames carried over from the segment
// before), each task after the one before, since a segment starts from the last frames its
// predecessor made.
//
// Install: copy this file into the Flamenco Manager's `scripts/` folder and restart it. Submit
// with the GPU workers' tag (the Flamenco add-on's Tag field) when the workers generate locally,
// or any workers when `backends` in the batch file points at a backend (serve or serve-ray).

const JOB_TYPE = {
    label: "CharacterForge Batch",
    description: "Control maps and generations of a CharacterForge batch file, frame chunks per task",
    settings: [
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frames of the batch to run. Examples: '47', '1-30', '3, 5-10, 47-327'" },
        { key: "chunk_size", type: "int32", default: 4, propargs: { min: 1, max: 10000 }, visible: "submission",
          description: "Frames per task (each task opens the .blend once)" },
        { key: "segment_frames", type: "int32", default: 0, propargs: { min: 0, max: 129 }, visible: "submission",
          description: "Animated shots: the frames of a segment (81 for wan-vace, 77 for wan-animate; as the batch " +
                       "file's [animation] segment); 0: frame chunks" },
        { key: "carry_frames", type: "int32", default: 5, propargs: { min: 1, max: 32 }, visible: "submission",
          description: "Animated shots: the frames each segment carries over (as the batch file's [animation] carry)" },
        { key: "batch_file", type: "string", subtype: "file_path", required: true, visible: "submission",
          description: "The batch TOML file (cameras, seeds, shot settings, backends), at a path the workers see" },
        { key: "characterforge_root", type: "string", subtype: "dir_path", required: true, visible: "submission",
          description: "The CharacterForge folder on the workers (the one holding blender_scripts/)" },
        { key: "keep_changed", type: "bool", default: false, visible: "submission",
          description: "Keep finished units made with other settings (listed in each task's log) instead of " +
                       "redoing them" },
        { key: "blendfile", type: "string", required: true, visible: "web",
          description: "Path of the .blend file" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    if (!String(settings.batch_file).toLowerCase().endsWith(".toml")) {
        throw `batch_file "${settings.batch_file}" is not a batch file: choose the .toml that batch.py reads`;
    }
    if (!settings.characterforge_root) {
        throw "characterforge_root is empty: give the CharacterForge folder as the workers see it";
    }
    if (!(settings.chunk_size >= 1)) {
        throw `chunk_size ${settings.chunk_size} must be 1 or more`;
    }
    const script = path.join(settings.characterforge_root, "blender_scripts", "batch.py");
    const segmented = settings.segment_frames > 0;
    let before = null;
    for (const chunk of segmented ? segmentChunks(settings) : frameChunker(settings.frames, settings.chunk_size)) {
        const task = author.Task(`characterforge-${chunk}`, "blender");
        task.addCommand(author.Command("blender-render", {
            exe: "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: [],
            blendfile: settings.blendfile,
            args: ["--python", script, "--", "--job", settings.batch_file, "--frames", chunk]
                .concat(settings.keep_changed ? ["--keep-changed"] : []),
        }));
        if (segmented && before) {
            task.addDependency(before);  // this segment starts from the frames the one before made
        }
        before = task;
        job.addTask(task);
    }
}

// An animated shot's segments as chunks of the frames each one makes new ("A-B"), as
// core/animation_spec.plan_segments plans them: the first makes segment_frames frames, each later
// one carries carry_frames over and makes the rest.
function segmentChunks(settings) {
    const match = String(settings.frames).trim().match(/^(-?\d+)\s*(?:-|\.\.)\s*(-?\d+)$/);
    if (!match) {
        throw `frames "${settings.frames}": an animated shot is one run of frames, such as 1-48`;
    }
    const [first, last] = [Number(match[1]), Number(match[2])];
    const length = settings.segment_frames, carry = settings.carry_frames;
    if (!(length > carry)) {
        throw `segment_frames ${length} must be more than carry_frames ${carry}`;
    }
    const chunks = [];
    for (let start = first, made = length; start <= last; start += made, made = length - carry) {
        const end = Math.min(last, start + made - 1);
        chunks.push(start === end ? `${start}` : `${start}-${end}`);
    }
    return chunks;
}
