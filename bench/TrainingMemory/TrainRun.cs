using System.Diagnostics;
using System.Globalization;

namespace ServerlessClassifier.Bench.TrainingMemory;

/// <summary>One `trainjob train` process and its peak resident memory, read from /proc while it runs.</summary>
internal sealed record TrainRun(int Images, double PeakMb, double Seconds, int ExitCode, string Tail)
{
    /// <summary>The options every run shares (the mode, the data and the output folder are the run's own; head mode has no epochs or batches).</summary>
    public static string Arguments(string mode) =>
        $"trainjob train --mode {mode} --backbone random:resnet18 --input-size 32{(mode == "head" ? "" : " --epochs 1 --batch-size 64")} --precision fp32 --device cpu --seed 42";

    public static async Task<TrainRun> MeasureAsync(string trainJobDll, string mode, string data, string output, int images)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var arguments = Arguments(mode).Split(' ').Skip(1).ToList(); // without the word "trainjob"
        start.ArgumentList.Add(trainJobDll);
        arguments.ForEach(start.ArgumentList.Add);
        foreach (var extra in (string[])["--data", data, "--output", output, .. mode == "finetune" ? ["--unfreeze", "layer4"] : Array.Empty<string>()])
        {
            start.ArgumentList.Add(extra);
        }
        var tail = new Queue<string>();
        void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (tail)
            {
                tail.Enqueue(line);
                if (tail.Count > 5)
                {
                    tail.Dequeue();
                }
            }
        }
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // VmHWM only grows, so the last value read before the process ends is its peak (up to its last 200 ms).
        long peakKb = 0;
        var status = $"/proc/{process.Id}/status";
        while (!process.HasExited)
        {
            try
            {
                var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                if (line is not null)
                {
                    peakKb = Math.Max(peakKb, long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // it ended between the check and the read
            }
            await Task.Delay(200);
        }
        await process.WaitForExitAsync();
        return new TrainRun(images, peakKb / 1024.0, clock.Elapsed.TotalSeconds, process.ExitCode, string.Join(" | ", tail));
    }
}
