using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>Where long-running work reports how far it is.</summary>
public interface IProgressSink
{
    /// <summary>Progress of a named phase (one bar per phase).</summary>
    void Report(string phase, double completed, double total);

    /// <summary>A line for people (e.g. an epoch's metrics), printed above live bars.</summary>
    void Line(string message);
}

/// <summary>
/// Live progress bars with elapsed and remaining time on a terminal (Spectre.Console); plain, throttled
/// progress lines with an ETA when the output is redirected (logs of a container job, CI, tests).
/// </summary>
public static class ProgressDisplay
{
    public static async Task<T> RunAsync<T>(CliContext context, Func<IProgressSink, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(work);
        if (!context.Interactive)
        {
            return await work(new PlainSink(context));
        }
        return await context.Console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(progress => work(new LiveSink(context, progress)));
    }

    private sealed class LiveSink(CliContext context, ProgressContext progress) : IProgressSink
    {
        private readonly Dictionary<string, ProgressTask> tasks = new(StringComparer.Ordinal);
        private readonly Lock gate = new();

        public void Report(string phase, double completed, double total)
        {
            lock (gate)
            {
                if (!tasks.TryGetValue(phase, out var task))
                {
                    task = progress.AddTask(Markup.Escape(phase), maxValue: Math.Max(total, 1e-9));
                    tasks[phase] = task;
                }
                task.MaxValue = Math.Max(total, 1e-9);
                task.Value = Math.Min(completed, task.MaxValue);
                progress.Refresh();
            }
        }

        public void Line(string message)
        {
            lock (gate)
            {
                context.Console.WriteLine(context.Mask(message));
            }
        }
    }

    private sealed class PlainSink(CliContext context) : IProgressSink
    {
        private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
        private readonly Dictionary<string, (Stopwatch Clock, TimeSpan? LastPrinted, bool Done)> phases = new(StringComparer.Ordinal);
        private readonly Lock gate = new();

        public void Report(string phase, double completed, double total)
        {
            lock (gate)
            {
                if (!phases.TryGetValue(phase, out var state))
                {
                    state = (Stopwatch.StartNew(), null, false);
                }
                var fraction = total <= 0 ? 1 : Math.Clamp(completed / total, 0, 1);
                var done = fraction >= 1;
                var elapsed = state.Clock.Elapsed;
                if ((done && !state.Done) || (!done && (state.LastPrinted is not { } last || elapsed - last >= Interval)))
                {
                    var eta = fraction > 0 && !done ? $", ETA {Format(elapsed * ((1 - fraction) / fraction))}" : "";
                    context.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{phase}: {fraction:P0} ({completed:0.##}/{total:0.##}), elapsed {Format(elapsed)}{eta}"));
                    state.LastPrinted = elapsed;
                }
                state.Done = done;
                phases[phase] = state;
            }
        }

        public void Line(string message)
        {
            lock (gate)
            {
                context.WriteLine(message);
            }
        }

        private static string Format(TimeSpan time) => time.ToString(time.TotalHours >= 1 ? @"h\:mm\:ss" : @"m\:ss", CultureInfo.InvariantCulture);
    }
}
