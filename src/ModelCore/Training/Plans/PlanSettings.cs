using System.Collections;
using System.Globalization;
using System.Reflection;

namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>One setting of a plan as people read it: its name and its value.</summary>
public sealed record PlanSetting(string Name, string Value);

/// <summary>A setting that differs between two plans.</summary>
public sealed record PlanDifference(string Name, string Was, string Now);

/// <summary>
/// Reads a plan's settings (the properties marked <see cref="SettingAttribute"/>, base class first, nested settings
/// flattened) to print them and to compare two plans: what resume checks, setting by setting.
/// </summary>
public static class PlanSettings
{
    /// <summary>The mode and every setting, in declaration order.</summary>
    public static IReadOnlyList<PlanSetting> Describe(TrainingPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var settings = new List<PlanSetting> { new("mode", Format(plan.Mode)) };
        Collect(plan, settings);
        return settings;
    }

    /// <summary>The settings whose values differ (the mode alone when the plans are of different modes); empty when the plans are the same.</summary>
    public static IReadOnlyList<PlanDifference> Differences(TrainingPlan was, TrainingPlan now)
    {
        ArgumentNullException.ThrowIfNull(was);
        ArgumentNullException.ThrowIfNull(now);
        if (was.GetType() != now.GetType())
        {
            return [new PlanDifference("mode", Format(was.Mode), Format(now.Mode))];
        }
        var before = Describe(was);
        var after = Describe(now);
        return [.. before.Zip(after).Where(p => p.First.Value != p.Second.Value).Select(p => new PlanDifference(p.First.Name, p.First.Value, p.Second.Value))];
    }

    private static void Collect(object value, List<PlanSetting> settings)
    {
        foreach (var type in Hierarchy(value.GetType()))
        {
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                if (property.GetCustomAttribute<SettingAttribute>() is not { } setting)
                {
                    continue;
                }
                var current = property.GetValue(value);
                if (current is not null && HasSettings(current.GetType()))
                {
                    Collect(current, settings);
                }
                else
                {
                    settings.Add(new PlanSetting(setting.Name, Format(current)));
                }
            }
        }
    }

    /// <summary>The type and its base types, the most basic first.</summary>
    private static List<Type> Hierarchy(Type type)
    {
        var chain = new List<Type>();
        for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
        {
            chain.Add(t);
        }
        chain.Reverse();
        return chain;
    }

    private static bool HasSettings(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Any(p => p.GetCustomAttribute<SettingAttribute>() is not null);

    private static string Format(object? value) => value switch
    {
        null => "(auto)",
        bool b => b ? "yes" : "no",
        string s => s.Length == 0 ? "none" : s,
        Enum e => e.ToString().ToLowerInvariant(),
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable items => items.Cast<object?>().Select(Format).ToList() is { Count: > 0 } list ? string.Join(",", list) : "none",
        _ => value.ToString() ?? "",
    };
}
